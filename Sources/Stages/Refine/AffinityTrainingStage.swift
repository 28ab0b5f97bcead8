import Data
import Foundation
import Network
import TrainingLoop
import Workflow

/// `train-aff`: AffinityNet's training (psa's train_aff.py, spec 9.3) on the
/// affinity labels, data-parallel, the rank's share in micro-batches where
/// memory asks for them, through the one training loop.
public enum AffinityTrainingStage: Stage {
    public static let name = "train-aff"

    public struct Settings: TrainingStageSettings, Equatable {
        public var list = "train_aug"
        /// The CRF score stacks of `affinity-labels`; nil = WORK/affinity.
        public var labels: String?
        /// ImageNet or classifier weights whose backbone AffinityNet starts from; nil = He initialisation at `widthDivisor`.
        public var initialWeights: String?
        public var widthDivisor = 1
        public var epochs = 8
        /// The global batch, split evenly over the ranks.
        public var batch = 8
        public var learningRate: Float = 0.1
        /// A multiple of 8 (the scores are pooled 8 x 8).
        public var crop = 448
        public var momentum = PolySGD.referenceMomentum
        public var weightDecay = PolySGD.referenceWeightDecay
        public var seed: UInt64 = 0
        public var checkpointEvery = 1
        public var resume = false
        public var stopAfterEpochs: Int?
        /// Run a rank's share in parts of this many images (same result, less
        /// memory); nil: all at once when it fits the rank's part of the node's memory.
        public var microBatch: Int?

        public init() {}
    }

    public typealias Result = TrainingResult

    public static func run(_ settings: Settings, in context: StageContext) throws -> TrainingResult {
        try TrainingChecks.validate(settings, epochs: settings.epochs)
        try requireSetting(settings.crop % 8 == 0, "--crop must be a positive multiple of 8 (the scores are pooled 8 x 8)")
        try requireSetting((settings.microBatch ?? 1) >= 1, "--micro-batch must be at least 1")
        let dataset = try context.requireDataset(for: name)
        let list = try dataset.list(settings.list)
        try dataset.validate(list)
        let network = try makeNetwork(settings, context: context)
        var options = Training.Options(round: 0, epochs: settings.epochs, globalBatch: settings.batch, learningRate: settings.learningRate,
                                       cropSize: settings.crop, layout: context.layout)
        options.checkpointPrefix = WorkLayout.affinityPrefix
        TrainingOptions.apply(context: context, momentum: settings.momentum, weightDecay: settings.weightDecay, seed: settings.seed,
                              checkpointEvery: settings.checkpointEvery, resume: settings.resume,
                              stopAfterEpochs: settings.stopAfterEpochs, to: &options)
        context.log("training AffinityNet: \(list.ids.count) images of \(list.source), \(settings.epochs) epochs, lr \(settings.learningRate), crop \(settings.crop), global batch \(settings.batch) over \(context.communicator.size) rank(s), width 1/\(network.widthDivisor), starting from \(settings.initialWeights ?? "He initialisation")")
        let parts = AffinityTraining.microBatch(requested: settings.microBatch, share: options.globalBatch / max(1, context.communicator.size),
                                                network: network, crop: options.cropSize, ranksOnThisNode: context.communicator.localSize)
        if let note = parts.note { context.log(note) }
        let model = AffinityTraining(network: network, dataset: dataset, ids: list.ids,
                                     scores: settings.labels ?? context.layout.affinityLabels.path, cropSize: options.cropSize,
                                     microBatch: parts.size, skipUnreadable: options.skipUnreadable, decodeThreads: options.decodeThreads)
        let summary = try Training.stoppable {
            try Training.run(model, imageCount: list.ids.count, options: options, communicator: context.communicator, log: context.log)
        }
        return TrainingResult(summary)
    }

    /// AffinityNet with the initial weights' backbone and new heads, or from scratch (He, residual branches x0.1).
    static func makeNetwork(_ settings: Settings, context: StageContext) throws -> AffinityNetwork {
        if let initialWeights = settings.initialWeights {
            return try AffinityNetwork.fromWeights(initialWeights, backboneOnly: true, headSeed: settings.seed, compute: context.compute,
                                                   note: context.warn)
        }
        let network = AffinityNetwork(widthDivisor: settings.widthDivisor, compute: context.compute)
        network.initializeBackbone(seed: settings.seed, residualBranchScale: ClassifierTrainingStage.scratchBranchScale)
        network.initializeHeads(seed: settings.seed)
        return network
    }
}
