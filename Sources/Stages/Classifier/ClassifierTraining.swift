import Data
import Distributed
import Kernels
import Network
import TrainingLoop

/// The SC-CAM classifier's training (spec 3): multi-label soft-margin losses
/// of both heads against per-image targets, normalised by the global batch.
final class ClassifierTraining: TrainingModel {
    let network: SCCAMNetwork
    let ids: [String]
    let targets: [[[Float]]]
    let source: ImageSource
    let augmentation: TrainingAugmentation
    let options: Training.Options

    init(network: SCCAMNetwork, dataset: any SegmentationDataset, ids: [String], targets: [[[Float]]], options: Training.Options) {
        self.network = network
        self.ids = ids
        self.targets = targets
        self.options = options
        source = ImageSource(dataset: dataset, skipUnreadable: options.skipUnreadable)
        augmentation = TrainingAugmentation(cropSize: options.cropSize, longSide: options.longSide)
    }

    var store: ParameterStore { network.store }
    var headPrefixes: [String] { ["fc8"] }
    func loadWeights(_ path: String) throws { try network.loadWeights(path) }
    func saveWeights(_ path: String, metadata: [String: String]) throws { try network.saveSafetensors(path, metadata: metadata) }

    func loader(schedule: EpochSchedule, epoch: Int, firstBatch: Int, rank: Int, size: Int) -> PrefetchingLoader<TrainingBatch> {
        TrainingBatches.loader(ids: ids, source: source, augmentation: augmentation, schedule: schedule, epoch: epoch,
                               firstBatch: firstBatch, rank: rank, size: size, decodeThreads: options.decodeThreads)
    }

    func firstSampleIndex(_ batch: TrainingBatch) -> Int { batch.samples.first ?? 0 }

    func trainStep(_ batch: TrainingBatch, dropout: DropoutContext, communicator: Communicator,
                   gradientsReady: (Range<Int>) -> Void) throws -> [Double] {
        let output = batch.images.withUnsafeBufferPointer {
            network.forward(input: $0.baseAddress!, batch: batch.count, height: options.cropSize, width: options.cropSize,
                            mode: .training(dropout: dropout, inputGradient: false))
        }
        let batchTargets = targets.map { head in batch.items.flatMap { head[$0] } }
        let accuracy = Self.parentAccuracy(logits: output.logits[0], targets: batchTargets[0], count: batch.count,
                                           classes: network.configuration.classes)
        let losses = withoutActuallyEscaping(gradientsReady) { ready in
            network.backward(targets: batchTargets, normalizer: options.globalBatch, subcategoryWeight: options.subcategoryWeight,
                             gradientsReady: ready)
        }
        return [losses.total, losses.parent, losses.subcategory ?? 0, accuracy]
    }

    func report(_ summed: [Double], globalBatch: Int) -> [TrainingReportEntry] {
        [TrainingReportEntry(key: "loss", value: summed[0], tensorBoardTag: "Total Loss"),
         TrainingReportEntry(key: "loss20", value: summed[1], tensorBoardTag: "20 Classification Loss"),
         TrainingReportEntry(key: "loss_sub", value: summed[2], tensorBoardTag: "200 Classification Loss"),
         TrainingReportEntry(key: "acc20", value: summed[3] / Double(globalBatch), decimals: 4, tensorBoardTag: "Cls20 Accuracy")]
    }

    func consoleSummary(_ entries: [TrainingReportEntry]) -> String {
        String(format: "loss %.4f (20: %.4f, sub: %.4f) acc20 %.4f", entries[0].value, entries[1].value, entries[2].value, entries[3].value)
    }
}

extension ClassifierTraining {
    /// Trains `network` on `ids` with per-image targets (one array per head).
    static func run(network: SCCAMNetwork, dataset: any SegmentationDataset, ids: [String], targets: [[[Float]]], options: Training.Options,
                           communicator: Communicator, log: (String) -> Void) throws -> Training.Summary {
        let model = ClassifierTraining(network: network, dataset: dataset, ids: ids, targets: targets, options: options)
        return try Training.run(model, imageCount: ids.count, options: options, communicator: communicator, log: log)
    }

    /// The reference's parent-class accuracy, summed over this rank's images: per
    /// image the Jaccard index |P ∩ G| / (|G| + |P| - |P ∩ G|) of the predicted
    /// label set (sigmoid > 0.5, i.e. logit > 0) and the true one, rounded to 4 decimals.
    static func parentAccuracy(logits: [Float], targets: [Float], count: Int, classes: Int) -> Double {
        var total = 0.0
        for n in 0..<count {
            var both = 0, predicted = 0, truth = 0
            for c in 0..<classes {
                let p = logits[n * classes + c] > 0, g = targets[n * classes + c] == 1
                if p { predicted += 1 }
                if g { truth += 1 }
                if p && g { both += 1 }
            }
            let union = truth + predicted - both
            total += union == 0 ? 1 : (Double(both) / Double(union) * 10_000).rounded() / 10_000
        }
        return total
    }
}
