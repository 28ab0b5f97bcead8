import Data
import Distributed
import Foundation
import Network

/// DeepLab-v2's training (deeplab-pytorch's main.py train) as `sccam train-seg`
/// and the pipeline both run it.
public enum SegmentationTrainingStage {
    /// DeepLab-v2 with `initialWeights` (the ASPP starts at N(0, 0.01) as the
    /// reference's where the file has none), or from scratch (He, residual
    /// branches x0.1) when nil. Returns what was loaded, for the log; nil from scratch.
    public static func makeNetwork(configuration: DeepLabConfiguration, initialWeights: String?,
                                   seed: UInt64) throws -> (network: DeepLabV2, loaded: String?) {
        let network = DeepLabV2(configuration: configuration)
        network.initializeASPP(seed: seed)
        guard let path = initialWeights else {
            network.initialize(seed: seed, residualBranchScale: Training.scratchBranchScale)
            return (network, nil)
        }
        let (source, report) = try network.loadWeights(path)
        return (network, "\(path) (\(source.rawValue))"
                + (report.keptAtInitialization.isEmpty ? "" : "; the ASPP starts at N(0, 0.01) as the reference's"))
    }

    /// Trains `network` on `ids` with the per-pixel labels in `labels`; `options`
    /// carries the schedule (`maxSteps` iterations, checkpoints SEG_ep{e}).
    /// A network trained from scratch keeps its stem nearly still (1/4096 of
    /// the learning rate), as the reference's frozen-then-fine-tuned stem would be.
    public static func run(network: DeepLabV2, fromScratch: Bool, dataset: VOCDataset, ids: [String], labels: String,
                           augmentation: SegmentationAugmentation, subBatchSize: Int, microBatch: Int?, options: Training.Options,
                           skipUnreadable: Bool, communicator: Communicator, log: (String) -> Void) throws -> Training.Summary {
        var options = options
        options.checkpointPrefix = "SEG"
        let model = SegmentationTraining(network: network, dataset: dataset, ids: ids, labels: labels, augmentation: augmentation,
                                         subBatchSize: subBatchSize, microBatch: microBatch, skipUnreadable: skipUnreadable,
                                         decodeThreads: options.decodeThreads)
        if fromScratch { model.stemLearningRateMultiplier = 1.0 / 4096 }
        return try Training.run(model, imageCount: ids.count, options: options, communicator: communicator, log: log)
    }
}
