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
