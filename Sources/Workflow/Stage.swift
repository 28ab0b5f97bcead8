import Data
import Distributed
import Foundation
import Kernels

/// One step of the method, as a library type: its `Settings` (Codable, the
/// reference's values as defaults, written once), its `Result` (typed,
/// Codable: what run.json records and what the ranks agree on), and one
/// `run`. `sccam`'s commands and the pipeline both run stages through this
/// and nothing else, so a stage is composed in exactly one place.
public protocol Stage {
    associatedtype Settings: Codable & Sendable
    associatedtype Result: Codable & Sendable
    /// The stage's name, as the command that runs it alone is called.
    static var name: String { get }
    static func run(_ settings: Settings, in context: StageContext) throws -> Result
}

/// What every stage runs in: the ranks, the work folder's layout, how the
/// networks compute, the dataset, the knobs that do not change results, and
/// rank 0's log.
public struct StageContext {
    public let communicator: Communicator
    public let layout: WorkLayout
    public let compute: Compute
    /// The dataset the stage reads (nil for stages that read none: cluster, crf).
    public let dataset: (any SegmentationDataset)?
    public var runtime: StageRuntime
    /// Rank 0's progress and results (the other ranks' calls print nothing).
    public let log: (String) -> Void
    /// Rank 0's warnings.
    public let warn: (String) -> Void

    public init(communicator: Communicator, layout: WorkLayout, compute: Compute = Compute(), dataset: (any SegmentationDataset)? = nil,
                runtime: StageRuntime = StageRuntime(), log: @escaping (String) -> Void, warn: @escaping (String) -> Void) {
        self.communicator = communicator
        self.layout = layout
        self.compute = compute
        self.dataset = dataset
        self.runtime = runtime
        self.log = log
        self.warn = warn
    }

    public var isRoot: Bool { communicator.isRoot }

    /// The dataset, for stages that read images.
    public func requireDataset(for stage: String) throws -> any SegmentationDataset {
        guard let dataset else { throw DataError("\(stage) reads images: give --voc-root, or --dataset coco with --coco-root") }
        return dataset
    }

    /// The same context on another work folder (the pipeline's per-round CAM folders).
    public func working(in layout: WorkLayout) -> StageContext {
        StageContext(communicator: communicator, layout: layout, compute: compute, dataset: dataset, runtime: runtime, log: log, warn: warn)
    }

    /// Readies the work folder on every rank: rank 0 removes the temporaries a
    /// killed writer left there, and every rank must see the folder rank 0 writes into.
    public func prepareWork() throws {
        let removed = try WorkFolder.prepare(layout, communicator: communicator)
        if removed > 0 { log("removed \(removed) temporary file(s) left in \(layout.root) by an interrupted writer") }
    }

    /// After a stage: the temporaries of writers that were still dying when it started go too.
    public func finishWork() throws {
        let removed = try WorkFolder.sweep(layout, communicator: communicator)
        if removed > 0 { log("removed \(removed) more temporary file(s) of an interrupted writer that had not yet ended") }
    }
}

/// Knobs that change how fast a stage runs or what it tolerates, never its numbers.
public struct StageRuntime: Sendable {
    /// Background threads decoding and augmenting images.
    public var decodeThreads = 1
    /// Training: print and log every this many steps.
    public var logEvery = 10
    /// Per-image stages: images between a rank's checkpoints.
    public var checkpointImages = 100
    /// Skip unreadable images (counted and reported) instead of stopping.
    public var skipUnreadable = false
    /// How gradients are summed across ranks (the wire format is a setting of the experiment).
    public var exchange = GradientExchange.Settings()

    public init() {}
}

/// What a per-image stage did (infer, affinity-labels, refine, segment).
public struct ImagePassResult: Codable, Sendable, CustomStringConvertible {
    /// Images whose outputs exist after the pass (computed now or before).
    public let images: Int
    public let computed: Int
    public let alreadyDone: Int
    /// Unreadable images skipped (with `skipUnreadable`), as "id: reason".
    public let failures: [String]
    public let seconds: Double

    public init(_ summary: ImageStage.Summary) {
        images = summary.computed + summary.alreadyDone
        computed = summary.computed
        alreadyDone = summary.alreadyDone
        failures = summary.failures
        seconds = summary.seconds
    }

    enum CodingKeys: String, CodingKey {
        case images, computed, alreadyDone = "already_done", failures, seconds
    }

    public var description: String { described(as: "computed") }

    /// "refined 3 image(s), 1 already done, in 2.0 s", and the skipped images.
    public func described(as verb: String) -> String {
        String(format: "%@ %d image(s), %d already done, in %.1f s", verb, computed, alreadyDone, seconds)
            + (failures.isEmpty ? "" : "\n\(failures.count) image(s) were unreadable and skipped:\n  " + failures.joined(separator: "\n  "))
    }
}

/// What the settings of every training stage (`train`, `train-aff`,
/// `train-seg`) have, so that a front sets them alike.
public protocol TrainingStageSettings: Codable, Sendable {
    var list: String { get set }
    var initialWeights: String? { get set }
    var widthDivisor: Int { get set }
    var batch: Int { get set }
    var learningRate: Float { get set }
    var crop: Int { get set }
    var momentum: Float { get set }
    var weightDecay: Float { get set }
    var seed: UInt64 { get set }
    var checkpointEvery: Int { get set }
    var resume: Bool { get set }
    var stopAfterEpochs: Int? { get set }
}

/// A stage's check of its settings before it starts: the message names the
/// setting as its command-line flag and says what it takes.
public func requireSetting(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    guard condition else { throw DataError(message()) }
}
