import Data
import Distributed
import Foundation
import Network

/// AffinityNet's training (psa's train_aff.py) as `sccam train-aff` and the
/// pipeline both run it: the network from an initialisation or from scratch,
/// the rank's share in micro-batches where memory asks for them, the one loop.
public enum AffinityTrainingStage {
    /// AffinityNet with `initialWeights`' backbone and new heads, or from scratch (He, residual branches x0.1).
    public static func makeNetwork(initialWeights: String?, widthDivisor: Int, seed: UInt64,
                                   warn: (String) -> Void) throws -> AffinityNetwork {
        if let initialWeights {
            return try AffinityNetwork.fromWeights(initialWeights, backboneOnly: true, headSeed: seed, note: warn)
        }
        let network = AffinityNetwork(widthDivisor: widthDivisor)
        network.initializeBackbone(seed: seed, residualBranchScale: Training.scratchBranchScale)
        network.initializeHeads(seed: seed)
        return network
    }

    /// Trains `network` on `ids` with the affinity labels in `scores`; `options`
    /// carries the schedule (its checkpoints are named AFF_ep{e}).
    public static func run(network: AffinityNetwork, dataset: VOCDataset, ids: [String], scores: String, options: Training.Options,
                           microBatch: Int?, skipUnreadable: Bool, communicator: Communicator,
                           log: (String) -> Void) throws -> Training.Summary {
        var options = options
        options.checkpointPrefix = "AFF"
        let parts = AffinityTraining.microBatch(requested: microBatch, share: options.globalBatch / max(1, communicator.size),
                                                network: network, crop: options.cropSize, ranksOnThisNode: communicator.localSize)
        if let note = parts.note { log(note) }
        let model = AffinityTraining(network: network, dataset: dataset, ids: ids, scores: scores, cropSize: options.cropSize,
                                     microBatch: parts.size, skipUnreadable: skipUnreadable, decodeThreads: options.decodeThreads)
        return try Training.run(model, imageCount: ids.count, options: options, communicator: communicator, log: log)
    }
}
