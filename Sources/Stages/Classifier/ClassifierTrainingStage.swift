import Data
import Foundation
import Network
import TrainingLoop
import Workflow

/// `train`: the classifier of one round, data-parallel (spec 3). Round 0 is
/// the baseline (head fc8) on the image labels, as psa trains it; rounds >= 1
/// the SC-CAM classifier (fc8_20 + fc8_200) on `cluster`'s sub-category labels.
public enum ClassifierTrainingStage: Stage {
    public static let name = "train"

    public struct Settings: TrainingStageSettings, Equatable {
        /// 0 = the baseline classifier, >= 1 = an SC-CAM round.
        public var round: Int
        /// Sub-categories per class (rounds >= 1).
        public var k = 10
        /// Round 0's image list (rounds >= 1 train on the images of their sub-category labels).
        public var list = "train_aug"
        /// Backbone weights to start from (ImageNet in the reference); nil = He initialisation at `widthDivisor`.
        public var initialWeights: String?
        public var widthDivisor = 1
        public var epochs: Int
        /// The global batch, split evenly over the ranks.
        public var batch = 16
        public var learningRate: Float
        public var crop: Int
        /// The random resize of the long side before the crop, min and max (spec 3.3).
        public var longSide = [256, 512]
        public var subcategoryWeight: Float = 5
        /// The reference's effective momentum: its optimiser passes the weight decay into SGD's momentum slot.
        public var momentum = PolySGD.referenceMomentum
        public var weightDecay = PolySGD.referenceWeightDecay
        /// Seed of the data order, augmentation, dropout and the new layers' initialisation.
        public var seed: UInt64 = 0
        /// Checkpoint after every this many epochs (and after the last).
        public var checkpointEvery = 10
        /// Continue from the latest checkpoint in WORK/weights.
        public var resume = false
        /// Stop (with a checkpoint) after this many epochs of this run.
        public var stopAfterEpochs: Int?
        /// Stop after this epoch however often resumed (the pipeline needs only the checkpoint it uses).
        public var lastEpochToTrain: Int?

        /// The reference's schedule: round 0 psa's baseline (15 epochs, lr 0.1,
        /// crop 448), rounds >= 1 SC-CAM's (61 epochs, lr 0.01, crop 224).
        public init(round: Int) {
            self.round = round
            epochs = round == 0 ? 15 : 61
            learningRate = round == 0 ? 0.1 : 0.01
            crop = round == 0 ? 448 : 224
        }
    }

    public typealias Result = TrainingResult

    /// The residual-branch scale of a network trained from scratch.
    public static let scratchBranchScale = 0.1

    public static func run(_ settings: Settings, in context: StageContext) throws -> TrainingResult {
        try requireSetting(settings.round >= 0 && settings.k >= 1, "--round must be 0 or more and --k at least 1")
        try TrainingChecks.validate(settings, epochs: settings.epochs)
        try requireSetting(settings.longSide.count == 2 && settings.longSide[0] >= 1 && settings.longSide[0] <= settings.longSide[1],
                           "--long-side must be min,max in pixels, smallest first, like 256,512")
        let dataset = try context.requireDataset(for: name)
        let (ids, targets) = try self.targets(settings, dataset: dataset, context: context)
        let network = try makeNetwork(settings, classes: dataset.classCount, context: context)
        var options = Training.Options(round: settings.round, epochs: settings.epochs, globalBatch: settings.batch,
                                       learningRate: settings.learningRate, cropSize: settings.crop, layout: context.layout)
        options.longSide = settings.longSide[0]...settings.longSide[1]
        options.subcategoryWeight = settings.subcategoryWeight
        options.lastEpochToTrain = settings.lastEpochToTrain
        TrainingOptions.apply(context: context, momentum: settings.momentum, weightDecay: settings.weightDecay, seed: settings.seed,
                              checkpointEvery: settings.checkpointEvery, resume: settings.resume,
                              stopAfterEpochs: settings.stopAfterEpochs, to: &options)
        context.log("training round \(settings.round): \(ids.count) images, \(options.epochs) epochs (schedule)\(options.lastEpochToTrain.map { ", stopping after epoch \($0), the checkpoint used" } ?? ""), lr \(options.learningRate), crop \(options.cropSize), global batch \(options.globalBatch) over \(context.communicator.size) rank(s), starting from \(settings.initialWeights ?? "He initialisation")")
        let summary = try Training.stoppable {
            try ClassifierTraining.run(network: network, dataset: dataset, ids: ids, targets: targets, options: options,
                                       communicator: context.communicator, log: context.log)
        }
        return TrainingResult(summary)
    }

    /// The classifier a round starts from: the backbone of the initial weights
    /// (any format; its width decides the network's) with freshly
    /// Xavier-initialised heads, as the reference starts every round; or,
    /// without a file, He initialisation with every residual branch scaled
    /// down so the fresh network starts near the identity (its BatchNorms are frozen).
    static func makeNetwork(_ settings: Settings, classes: Int, context: StageContext) throws -> SCCAMNetwork {
        let round = settings.round, k = settings.k
        guard let initPath = settings.initialWeights else {
            context.warn("no initial weights: training round \(round) from scratch (He initialisation, residual branches x\(scratchBranchScale)), not from ImageNet as the reference does")
            let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: settings.widthDivisor, round: round, subcategoriesPerClass: k, classes: classes),
                                       compute: context.compute)
            network.initializeBackbone(seed: settings.seed, residualBranchScale: scratchBranchScale)
            network.initializeHeads(seed: settings.seed)
            return network
        }
        let (format, tensors) = try WeightFiles.read(initPath, note: context.warn)
        let (found, _) = try WeightConversion.configuration(of: tensors, path: initPath)
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: found.widthDivisor, round: round, subcategoriesPerClass: k, classes: classes),
                                   compute: context.compute)
        network.initializeHeads(seed: settings.seed)
        try network.store.load(tensors.filter { !$0.name.hasPrefix("fc8") }, from: "\(initPath) (\(format.rawValue))",
                               allowMissing: { $0.hasPrefix("fc8") })
        return network
    }

    /// The images and per-head targets of a round: round 0 trains on the
    /// image labels of its list; rounds >= 1 on `cluster`'s sub-category labels.
    static func targets(_ settings: Settings, dataset: any SegmentationDataset, context: StageContext) throws -> (ids: [String], targets: [[[Float]]]) {
        guard settings.round == 0 else {
            return try SubcategoryLabels.read(context.layout.subcategories(round: settings.round).table, k: settings.k,
                                              classes: dataset.classCount)
        }
        let imageList = try dataset.list(settings.list)
        try dataset.validate(imageList)
        let labels = try dataset.imageLabels(ids: imageList.ids, cache: context.isRoot ? context.layout.imageLabelCache : nil,
                                             warn: context.warn)
        return (imageList.ids, [imageList.ids.map { labels.multiHot($0)! }])
    }
}

/// What every training stage sets alike from its context and settings.
enum TrainingOptions {
    static func apply(context: StageContext, momentum: Float, weightDecay: Float, seed: UInt64, checkpointEvery: Int, resume: Bool,
                      stopAfterEpochs: Int?, to options: inout Training.Options) {
        options.momentum = momentum
        options.weightDecay = weightDecay
        options.seed = seed
        options.checkpointEvery = checkpointEvery
        options.resume = resume
        options.stopAfterEpochs = stopAfterEpochs
        options.decodeThreads = context.runtime.decodeThreads
        options.skipUnreadable = context.runtime.skipUnreadable
        options.logEvery = context.runtime.logEvery
        options.exchange = context.runtime.exchange
    }
}

extension ClassifierTrainingStage {
    /// The classifier's training on given images and targets (one array per
    /// head), for the training benchmark: the loop without the stage's setup.
    package static func train(network: SCCAMNetwork, dataset: any SegmentationDataset, ids: [String], targets: [[[Float]]], options: Training.Options,
                              context: StageContext) throws -> Training.Summary {
        try ClassifierTraining.run(network: network, dataset: dataset, ids: ids, targets: targets, options: options,
                                   communicator: context.communicator, log: context.log)
    }
}

/// The checks every training stage makes of its settings.
enum TrainingChecks {
    static func validate<Settings: TrainingStageSettings>(_ settings: Settings, epochs: Int) throws {
        try requireSetting(epochs >= 1 && settings.batch >= 1 && settings.checkpointEvery >= 1 && settings.crop >= 8,
                           "the epochs (or iterations), --batch and --checkpoint-every must be at least 1 and --crop at least 8")
        try requireSetting(settings.initialWeights != nil || [1, 2, 4, 8, 16, 32, 64].contains(settings.widthDivisor),
                           "--width-divisor must be a power of two up to 64")
    }
}
