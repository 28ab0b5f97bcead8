import Data
import Foundation
import Kernels
import Network
import TrainingLoop
import Workflow

/// `train-seg`: DeepLab-v2 as kazuto1011/deeplab-pytorch trains it
/// (deeplab-v2.md 4) on per-pixel labels (the random walk's, for the method),
/// data-parallel, through the one training loop.
public enum SegmentationTrainingStage: Stage {
    public static let name = "train-seg"

    public struct Settings: TrainingStageSettings, Equatable {
        /// Class-id label PNGs, {id}.png (0..20, 255 ignored): `refine`'s, or SegmentationClassAug.
        public var labels: String
        public var list = "train_aug"
        /// The COCO initialisation (.pth or init.caffemodel), a DeepLab checkpoint or a torchvision
        /// ResNet-101; nil = from scratch (He, for tests and demos).
        public var initialWeights: String?
        /// ResNet-101's channel divisor (1 = the real network).
        public var widthDivisor = 1
        /// Optimiser steps.
        public var iterations = 20_000
        /// Images per sub-batch (the loss is normalised per sub-batch) ...
        public var batch = 5
        /// ... and sub-batches per iteration.
        public var iterSize = 2
        /// The reference's 2.5e-4; SC-CAM lowered it "a bit" for noisy labels (the value is unpublished).
        public var learningRate: Float = 2.5e-4
        public var momentum: Float = 0.9
        public var weightDecay = PolySGD.referenceWeightDecay
        public var crop = 321
        /// The augmentation's random scales.
        public var scales = SegmentationAugmentation.referenceScales
        /// How the MSC inputs are resized (ratio: PyTorch <= 1.5, the reference's results).
        public var inputResize = BilinearResize.Rule.sizeRatio
        public var seed: UInt64 = 0
        /// Checkpoint every this many epochs (and after the last iteration).
        public var checkpointEvery = 5
        public var resume = false
        public var stopAfterEpochs: Int?
        /// Run a rank's images in parts of this many (same result, less memory).
        public var microBatch: Int?
        /// Also write the trained network to WORK/weights/SEG_final.safetensors (the pipeline's).
        public var writesFinalWeights = false

        public init(labels: String) { self.labels = labels }
    }

    public typealias Result = TrainingResult

    public static func run(_ settings: Settings, in context: StageContext) throws -> TrainingResult {
        try TrainingChecks.validate(settings, epochs: settings.iterations)
        try requireSetting(settings.iterSize >= 1 && (settings.microBatch ?? 1) >= 1 && settings.crop >= 16,
                           "--iter-size and --micro-batch must be at least 1 and --crop at least 16")
        try requireSetting(!settings.scales.isEmpty && settings.scales.allSatisfy { $0 > 0 }, "--scales must be positive numbers")
        let dataset = try context.requireDataset(for: name)
        let list = try dataset.list(settings.list)
        try dataset.validate(list)
        let configuration = DeepLabConfiguration(widthDivisor: settings.widthDivisor, classes: dataset.labelCount,
                                                 inputResize: settings.inputResize)
        let (network, loaded) = try makeNetwork(configuration: configuration, settings: settings, compute: context.compute)
        if let loaded {
            context.log("initial weights: \(loaded)")
        } else {
            context.warn("no initial weights: DeepLab trains from scratch (He initialisation), not from the COCO weights the reference starts from")
        }
        var options = Training.Options(round: 0, epochs: 1, globalBatch: settings.batch * settings.iterSize,
                                       learningRate: settings.learningRate, cropSize: settings.crop, layout: context.layout)
        options.maxSteps = settings.iterations
        options.checkpointPrefix = WorkLayout.segmentationPrefix
        TrainingOptions.apply(context: context, momentum: settings.momentum, weightDecay: settings.weightDecay, seed: settings.seed,
                              checkpointEvery: settings.checkpointEvery, resume: settings.resume,
                              stopAfterEpochs: settings.stopAfterEpochs, to: &options)
        context.log("train-seg: \(list.ids.count) images of \(list.source), labels \(settings.labels), \(settings.iterations) iterations of \(settings.iterSize) x \(settings.batch) images over \(context.communicator.size) rank(s), lr \(settings.learningRate), momentum \(settings.momentum), crop \(settings.crop), width 1/\(settings.widthDivisor)")
        let model = SegmentationTraining(network: network, dataset: dataset, ids: list.ids, labels: settings.labels,
                                         augmentation: SegmentationAugmentation(cropSize: settings.crop, scales: settings.scales),
                                         subBatchSize: settings.batch, microBatch: settings.microBatch,
                                         skipUnreadable: options.skipUnreadable, decodeThreads: options.decodeThreads)
        // A network trained from scratch keeps its stem nearly still, as the
        // reference's frozen-then-fine-tuned stem would be.
        if loaded == nil { model.stemLearningRateMultiplier = 1.0 / 4096 }
        let summary = try Training.stoppable {
            try Training.run(model, imageCount: list.ids.count, options: options, communicator: context.communicator, log: context.log)
        }
        if settings.writesFinalWeights {
            if context.isRoot { try network.saveSafetensors(context.layout.segmentationWeights) }
            try context.communicator.barrier()
        }
        return TrainingResult(summary)
    }

    /// DeepLab-v2 with the initial weights (the ASPP starts at N(0, 0.01) as
    /// the reference's where the file has none), or from scratch (He, residual
    /// branches x0.1). Returns what was loaded, for the log; nil from scratch.
    static func makeNetwork(configuration: DeepLabConfiguration, settings: Settings,
                            compute: Compute) throws -> (network: DeepLabV2, loaded: String?) {
        let network = DeepLabV2(configuration: configuration, compute: compute)
        network.initializeASPP(seed: settings.seed)
        guard let path = settings.initialWeights else {
            network.initialize(seed: settings.seed, residualBranchScale: ClassifierTrainingStage.scratchBranchScale)
            return (network, nil)
        }
        let (source, report) = try network.loadWeights(path)
        return (network, "\(path) (\(source.rawValue))"
                + (report.keptAtInitialization.isEmpty ? "" : "; the ASPP starts at N(0, 0.01) as the reference's"))
    }
}
