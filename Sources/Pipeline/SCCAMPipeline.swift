import Data
import Distributed
import Formats
import Foundation
import Kernels
import Network
import Stages
import TrainingLoop
import Workflow

/// The whole method (spec 3.1), as a composition of the stages and nothing
/// else: the baseline classifier's features, then for each round r =
/// 1...rounds: cluster them into sub-categories, train the round's
/// classifier on them, extract its features for the next round; CAMs on the
/// inference list, scored against the ground truth; then the pixel-level
/// stages and DeepLab-v2. Every stage is recorded in WORK/run.json; a rerun
/// skips finished stages and resumes an interrupted one from its own checkpoints.
public enum SCCAMPipeline {
    /// Where rounds >= 1 start from.
    public enum RoundStart: String, Codable, CaseIterable, Sendable {
        /// The initial weights (ImageNet in the reference), every round: the reference's choice.
        case initial
        /// The previous round's classifier (round 1: the baseline).
        case previous
        /// The baseline (round-0) classifier, every round.
        case baseline
    }

    /// What defines the experiment; a rerun must match it. The defaults are
    /// the stages' own (the reference's).
    public struct Settings: Codable, Equatable, Sendable {
        /// The PASCAL VOC 2012 folder (VOC runs).
        public var vocRoot: String?
        /// Which dataset the run reads (nil: VOC, as every run.json written before COCO).
        public var dataset: DatasetKind?
        /// The prepared COCO folder (COCO runs).
        public var cocoRoot: String?
        /// Backbone weights rounds start from (ImageNet in the reference); nil = He initialisation.
        public var initialWeights: String?
        /// A trained round-0 classifier (psa's res38_cls.pth); nil = train it here.
        public var baselineWeights: String?
        /// Network width when no weight file decides it.
        public var widthDivisor = Settings.baselineTraining.widthDivisor
        public var rounds = 3
        public var k = ClusterStage.Settings().k
        public var kmeansRestarts = ClusterStage.Settings().restarts
        public var kmeansSeed = ClusterStage.Settings().seed
        public var seed = Settings.baselineTraining.seed
        public var trainList = Settings.baselineTraining.list
        public var inferList = InferStage.Settings(weights: "").list
        /// Ground-truth masks; nil = the dataset's SegmentationClass.
        public var groundTruth: String?
        public var batch = Settings.baselineTraining.batch
        public var baselineEpochs = Settings.baselineTraining.epochs
        public var baselineLearningRate = Settings.baselineTraining.learningRate
        public var baselineCrop = Settings.baselineTraining.crop
        public var epochs = Settings.roundTraining.epochs
        public var learningRate = Settings.roundTraining.learningRate
        public var crop = Settings.roundTraining.crop
        /// The training resize of the long side, min and max (spec 3.3: 256...512 in every round).
        public var longSide = Settings.roundTraining.longSide
        /// For round r, the epoch whose checkpoint is used (features for round r + 1, and the final model).
        public var usedEpochs = [30, 40, 50]
        /// Train all `epochs` even past the used checkpoint (the reference does; the result is the same).
        public var finishSchedule = false
        public var roundStart = RoundStart.initial
        public var momentum = Settings.roundTraining.momentum
        public var weightDecay = Settings.roundTraining.weightDecay
        public var subcategoryWeight = Settings.roundTraining.subcategoryWeight
        public var checkpointEvery = Settings.roundTraining.checkpointEvery
        /// Infer and score every round's classifier, not only the last.
        public var evaluateAllRounds = false
        public var threshold = InferStage.Settings(weights: "").threshold
        public var scales = InferStage.Settings(weights: "").scales
        public var overlays = true
        /// Also write and score dCRF masks with this background power (SC-CAM's optional post-processing).
        public var crfAlpha: Float?
        /// The pixel-level stages after the CAMs (affinity labels, AffinityNet, random walk); nil = stop at CAMs.
        public var refine: RefineSettings? = RefineSettings()
        /// DeepLab-v2 on the pseudo-labels, scored on the validation list; nil = stop at the pseudo-labels.
        public var segmentation: SegmentationSettings? = SegmentationSettings()
        /// The convolutions' precision when not fp32 (bf16 changes the numbers;
        /// nil keeps run.json files written before the option comparable).
        public var convolutionPrecision: ConvolutionPrecision?
        /// The gradients' wire format when not fp32 (bf16 changes the numbers;
        /// nil keeps run.json files written before the option comparable).
        public var gradientExchange: GradientWireFormat?

        public init(vocRoot: String) { self.vocRoot = vocRoot }

        /// The dataset's kind and folder.
        public var datasetKind: DatasetKind { dataset ?? .voc }
        public var datasetRoot: String { (datasetKind == .coco ? cocoRoot : vocRoot) ?? "" }

        static let baselineTraining = ClassifierTrainingStage.Settings(round: 0)
        static let roundTraining = ClassifierTrainingStage.Settings(round: 1)
    }

    /// Knobs that do not change the results.
    public struct Runtime: Sendable {
        public var stages = StageRuntime()
        /// AffinityNet's rank share runs in parts of this many images (nil: all at once when it fits).
        public var affinityMicroBatch: Int?
        public init() {}
    }

    /// The scores of one round's CAMs.
    public struct RoundScore: Codable, Sendable {
        public let round: Int
        public let meanIoU: Double
        public let threshold: Float
        public let bestMeanIoU: Double
        public let bestThreshold: Float
        /// The dCRF masks' mIoU, when they were made.
        public let crfMeanIoU: Double?
    }

    public struct Summary: Codable, Sendable {
        public var scores: [RoundScore] = []
        /// The random walk's pseudo-labels' mIoU, when the refine stages ran.
        public var pseudoLabelMeanIoU: Double?
        /// The segmentation network's mIoU on the validation list (and with the CRF), when those stages ran.
        public var segmentationMeanIoU: Double?
        public var segmentationCRFMeanIoU: Double?
        public var stagesRun = 0
        public var stagesSkipped = 0
        public var seconds = 0.0
    }

    /// Runs every stage not yet done, on every rank alike.
    public static func run(settings: Settings, work: String, runtime: Runtime = Runtime(), compute: Compute = Compute(),
                           communicator: Communicator, log: @escaping (String) -> Void,
                           warn: @escaping (String) -> Void) throws -> Summary {
        let start = DispatchTime.now().uptimeNanoseconds
        try settings.validate()
        var compute = compute
        if let precision = settings.convolutionPrecision { compute.precision = precision }
        let layout = WorkLayout(work)
        var record = RunRecord(settings: settings)
        if communicator.isRoot {
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            if let existing = try RunRecord.read(layout.runRecord) {
                let differences = settings.differences(from: existing.settings)
                guard differences.isEmpty else {
                    throw DataError("\(layout.runRecord) belongs to a run with other settings (\(differences.joined(separator: "; "))); use another --work, or move run.json away to redo every stage")
                }
                record = existing
            }
        }
        try communicator.barrier()
        var stageRuntime = runtime.stages
        stageRuntime.exchange.wireFormat = settings.gradientExchange ?? .fp32
        let context = StageContext(communicator: communicator, layout: layout, compute: compute,
                                   dataset: try openDataset(settings.datasetKind, root: settings.datasetRoot), runtime: stageRuntime,
                                   log: log, warn: warn)
        let stages = try plan(settings, runtime: runtime, context: context)
        // Rank 0 decides what is finished, so every rank runs the same stages.
        var finished = stages.map { stage -> Int64 in
            guard communicator.isRoot, record.stage(stage.name)?.status == "done" else { return 0 }
            return stage.outputs.allSatisfy { FileManager.default.fileExists(atPath: layout.path($0)) } ? 1 : 0
        }
        try communicator.broadcast(&finished, root: 0)
        var summary = Summary()
        for (index, stage) in stages.enumerated() {
            let label = "[\(index + 1)/\(stages.count)] \(stage.name)"
            if finished[index] == 1 {
                log("\(label): done in an earlier run, skipped")
                continue
            }
            let interrupted = record.stage(stage.name)?.status == "running"
            log("\(label)\(interrupted ? " (resuming an interrupted run)" : "")")
            var entry = RunRecord.Stage(name: stage.name, status: "running", inputs: stage.inputs, outputs: stage.outputs,
                                        started: RunRecord.timestamp())
            if communicator.isRoot {
                record.update(entry)
                try record.write(to: layout.runRecord)
            }
            let stageStart = DispatchTime.now().uptimeNanoseconds
            let result = try stage.run()
            try communicator.barrier()
            entry.status = "done"
            entry.finished = RunRecord.timestamp()
            entry.seconds = Double(DispatchTime.now().uptimeNanoseconds - stageStart) / 1e9
            entry.result = result
            if communicator.isRoot {
                record.update(entry)
                try record.write(to: layout.runRecord)
            }
            log(String(format: "%@: done in %.1f s", label, entry.seconds!))
            summary.stagesRun += 1
        }
        // Every rank reads the scores rank 0 recorded.
        summary = try communicator.broadcast(communicator.isRoot ? scores(settings, record: record, into: summary) : nil, root: 0)
        summary.stagesSkipped = stages.count - summary.stagesRun
        summary.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return summary
    }

    /// The recorded scores of every evaluation.
    static func scores(_ settings: Settings, record: RunRecord, into summary: Summary) -> Summary {
        var summary = summary
        for round in evaluatedRounds(settings) {
            guard let result = record.result(of: "eval R\(round)", as: EvaluateStage.Result.self) else { continue }
            summary.scores.append(RoundScore(round: round, meanIoU: result.miou ?? .nan, threshold: result.threshold ?? .nan,
                                             bestMeanIoU: result.bestMiou ?? .nan, bestThreshold: result.bestThreshold ?? .nan,
                                             crfMeanIoU: result.crfMiou))
        }
        summary.pseudoLabelMeanIoU = record.result(of: "eval refine", as: EvaluateStage.Result.self)?.miou
        let segmentation = record.result(of: "eval segment", as: EvaluateStage.Result.self)
        summary.segmentationMeanIoU = segmentation?.miou
        summary.segmentationCRFMeanIoU = segmentation?.crfMiou
        return summary
    }

    static func evaluatedRounds(_ settings: Settings) -> [Int] {
        var rounds = settings.evaluateAllRounds ? Array(0...settings.rounds) : [settings.rounds]
        // The random walk propagates a round's CAMs of the inference list: that round is inferred too.
        if let refine = settings.refine, let round = refine.camsRound, !rounds.contains(round) { rounds = (rounds + [round]).sorted() }
        return rounds
    }
}
