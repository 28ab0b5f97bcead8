import Data
import Distributed
import Kernels
import Network

/// What `Training.run` needs from a network and its data: one family of
/// models (the SC-CAM classifier, AffinityNet) trains through one loop.
public protocol TrainingModel: AnyObject {
    associatedtype Batch: Sendable
    var store: ParameterStore { get }
    /// Weight names starting with these train at 10x the learning rate.
    var headPrefixes: [String] { get }
    func loadWeights(_ path: String) throws
    func saveWeights(_ path: String, metadata: [String: String]) throws
    /// This rank's slices of an epoch's global batches, from `firstBatch` on, prepared ahead.
    func loader(schedule: EpochSchedule, epoch: Int, firstBatch: Int, rank: Int, size: Int) -> PrefetchingLoader<Batch>
    /// The global sample index of the batch's first sample (it keys dropout).
    func firstSampleIndex(_ batch: Batch) -> Int
    /// Forward and backward of this rank's part of a global batch, the
    /// gradient of the global loss into `store.gradients` (`gradientsReady`
    /// hears each finished range). Returns values the loop sums over the
    /// ranks and reports; the first is the loss.
    func trainStep(_ batch: Batch, dropout: DropoutContext, communicator: Communicator,
                   gradientsReady: (Range<Int>) -> Void) throws -> [Double]
    /// The summed values as log entries, in the order they are written.
    func report(_ summed: [Double], globalBatch: Int) -> [TrainingReportEntry]
    /// The console text of the entries (after "step s/m epoch e: ").
    func consoleSummary(_ entries: [TrainingReportEntry]) -> String
    /// A tensor's learning-rate group (nil: `headPrefixes` decide, 10x, with decay).
    func learningRateGroup(_ entry: ParameterStore.Entry) -> PolySGD.Group?
    /// Steps between learning-rate updates (1: every step; DeepLab: 10).
    var learningRateStepSize: Int { get }
}

extension TrainingModel {
    public func learningRateGroup(_ entry: ParameterStore.Entry) -> PolySGD.Group? { nil }
    public var learningRateStepSize: Int { 1 }
}

/// One reported value: its metrics.jsonl key and TensorBoard tag.
public struct TrainingReportEntry: Sendable {
    public let key: String
    public let value: Double
    public let decimals: Int32
    public let tensorBoardTag: String?
    public init(key: String, value: Double, decimals: Int32 = 6, tensorBoardTag: String?) {
        self.key = key
        self.value = value
        self.decimals = decimals
        self.tensorBoardTag = tensorBoardTag
    }
}

/// The SC-CAM classifier's training (spec 3): multi-label soft-margin losses
/// of both heads against per-image targets, normalised by the global batch.
final class ClassifierTraining: TrainingModel {
    let network: SCCAMNetwork
    let ids: [String]
    let targets: [[[Float]]]
    let source: ImageSource
    let augmentation: TrainingAugmentation
    let options: Training.Options

    init(network: SCCAMNetwork, dataset: VOCDataset, ids: [String], targets: [[[Float]]], options: Training.Options) {
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
        let accuracy = Training.parentAccuracy(logits: output.logits[0], targets: batchTargets[0], count: batch.count)
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
