import Data
import Distributed
import Formats
import Foundation
import Kernels
import Network

/// The whole method (spec 3.1): the baseline classifier's features, then for
/// each round r = 1...rounds: cluster them into sub-categories, train the
/// round's classifier on them, extract its features for the next round;
/// finally CAMs on the inference list, scored against the ground truth.
/// Every stage is recorded in WORK/run.json; a rerun skips finished stages
/// and resumes an interrupted one from its own checkpoints.
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

    /// What defines the experiment; a rerun must match it.
    public struct Settings: Codable, Equatable, Sendable {
        public var vocRoot: String
        /// Backbone weights rounds start from (ImageNet in the reference); nil = He initialisation.
        public var initialWeights: String?
        /// A trained round-0 classifier (psa's res38_cls.pth); nil = train it here.
        public var baselineWeights: String?
        /// Network width when no weight file decides it.
        public var widthDivisor = 1
        public var rounds = 3
        public var k = 10
        public var kmeansRestarts = 10
        public var kmeansSeed: UInt64 = 0
        public var seed: UInt64 = 0
        public var trainList = "train_aug"
        public var inferList = "train"
        /// Ground-truth masks; nil = the dataset's SegmentationClass.
        public var groundTruth: String?
        public var batch = 16
        public var baselineEpochs = 15
        public var baselineLearningRate: Float = 0.1
        public var baselineCrop = 448
        public var epochs = 61
        public var learningRate: Float = 0.01
        public var crop = 224
        /// The training resize of the long side, min and max (spec 3.3: 256...512 in every round).
        public var longSide = [256, 512]
        /// For round r, the epoch whose checkpoint is used (features for round r + 1, and the final model).
        public var usedEpochs = [30, 40, 50]
        /// Train all `epochs` even past the used checkpoint (the reference does; the result is the same).
        public var finishSchedule = false
        public var roundStart = RoundStart.initial
        public var momentum: Float = PolySGD.referenceMomentum
        public var weightDecay: Float = PolySGD.referenceWeightDecay
        public var subcategoryWeight: Float = 5
        public var checkpointEvery = 10
        /// Infer and score every round's classifier, not only the last.
        public var evaluateAllRounds = false
        public var threshold: Float = CAMInference.defaultThreshold
        public var scales: [Double] = InferenceViews.referenceScales
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
    }

    /// Knobs that do not change the results.
    public struct Runtime: Sendable {
        public var decodeThreads = 1
        public var logEvery = 10
        public var checkpointImages = 100
        /// AffinityNet's rank share runs in parts of this many images (nil: all at once).
        public var affinityMicroBatch: Int?
        /// Bucket size and algorithm of the gradient exchange (the wire format is a setting).
        public var exchange = GradientExchange.Settings()
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

    public struct Summary: Sendable {
        public let scores: [RoundScore]
        /// The random walk's pseudo-labels' mIoU, when the refine stages ran.
        public let pseudoLabelMeanIoU: Double?
        /// The segmentation network's mIoU on the validation list (and with the CRF), when those stages ran.
        public let segmentationMeanIoU: Double?
        public let segmentationCRFMeanIoU: Double?
        public let stagesRun: Int
        public let stagesSkipped: Int
        public let seconds: Double
    }

    struct Stage {
        let name: String
        let inputs: [String]
        /// Relative to the work folder.
        let outputs: [String]
        let run: () throws -> [String: Double]?
    }

    public static func run(settings: Settings, work: String, runtime: Runtime = Runtime(), communicator: Communicator,
                           log: @escaping (String) -> Void, warn: @escaping (String) -> Void) throws -> Summary {
        let start = DispatchTime.now().uptimeNanoseconds
        try settings.validate()
        if settings.convolutionPrecision == .bf16 { ConvolutionPath.standard = .oneDNN(.bf16) }
        let recordPath = "\(work)/run.json"
        var record = RunRecord(settings: settings)
        if communicator.isRoot {
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            if let existing = try RunRecord.read(recordPath) {
                let differences = settings.differences(from: existing.settings)
                guard differences.isEmpty else {
                    throw DataError("\(recordPath) belongs to a run with other settings (\(differences.joined(separator: "; "))); use another --work, or move run.json away to redo every stage")
                }
                record = existing
            }
        }
        try communicator.barrier()
        let dataset = try VOCDataset(root: settings.vocRoot)
        let stages = try plan(settings: settings, work: work, runtime: runtime, dataset: dataset, communicator: communicator,
                              log: log, warn: warn)
        // Rank 0 decides what is finished, so every rank runs the same stages.
        var finished = stages.map { stage -> Int64 in
            guard communicator.isRoot, record.stage(stage.name)?.status == "done" else { return 0 }
            return stage.outputs.allSatisfy { FileManager.default.fileExists(atPath: "\(work)/\($0)") } ? 1 : 0
        }
        try communicator.broadcast(&finished, root: 0)
        var ran = 0
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
                try record.write(to: recordPath)
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
                try record.write(to: recordPath)
            }
            log(String(format: "%@: done in %.1f s", label, entry.seconds!))
            ran += 1
        }
        // Every rank reads the scores rank 0 recorded.
        struct Scores: Codable {
            var rounds: [RoundScore] = []
            var pseudoLabels: Double?
            var segmentation: Double?
            var segmentationCRF: Double?
        }
        var recorded: Scores?
        if communicator.isRoot {
            var scores = Scores()
            for round in evaluatedRounds(settings) {
                guard let result = record.stage("eval R\(round)")?.result else { continue }
                scores.rounds.append(RoundScore(round: round, meanIoU: result["miou"] ?? .nan, threshold: Float(result["threshold"] ?? .nan),
                                                bestMeanIoU: result["best_miou"] ?? .nan, bestThreshold: Float(result["best_threshold"] ?? .nan),
                                                crfMeanIoU: result["crf_miou"]))
            }
            scores.pseudoLabels = record.stage("eval refine")?.result?["miou"]
            scores.segmentation = record.stage("eval segment")?.result?["miou"]
            scores.segmentationCRF = record.stage("eval segment")?.result?["crf_miou"]
            recorded = scores
        }
        let final = try communicator.broadcast(recorded, root: 0)
        let scores = final.rounds
        return Summary(scores: scores, pseudoLabelMeanIoU: final.pseudoLabels, segmentationMeanIoU: final.segmentation,
                       segmentationCRFMeanIoU: final.segmentationCRF, stagesRun: ran, stagesSkipped: stages.count - ran,
                       seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    /// What every training stage of the pipeline sets alike: it always resumes.
    static func configure(_ options: inout Training.Options, momentum: Float, weightDecay: Float, settings: Settings, runtime: Runtime) {
        options.momentum = momentum
        options.weightDecay = weightDecay
        options.seed = settings.seed
        options.checkpointEvery = settings.checkpointEvery
        options.resume = true
        options.decodeThreads = runtime.decodeThreads
        options.logEvery = runtime.logEvery
        options.exchange = runtime.exchange
        options.exchange.wireFormat = settings.gradientExchange ?? .fp32
    }

    static func evaluatedRounds(_ settings: Settings) -> [Int] {
        var rounds = settings.evaluateAllRounds ? Array(0...settings.rounds) : [settings.rounds]
        // The random walk propagates a round's CAMs of the inference list: that round is inferred too.
        if let refine = settings.refine, let round = refine.camsRound, !rounds.contains(round) { rounds = (rounds + [round]).sorted() }
        return rounds
    }

    /// The path (without extension) of the checkpoint a round's later stages use.
    static func weightsPath(round: Int, settings: Settings) -> String {
        round == 0 ? "weights/\(Training.checkpointName(round: 0, epoch: settings.baselineEpochs - 1)).safetensors"
            : "weights/\(Training.checkpointName(round: round, epoch: settings.usedEpochs[round - 1])).safetensors"
    }

    static func featureFiles(round: Int) -> [String] {
        ["features/R\(round)_features.npy", "features/R\(round)_images.txt", "features/R\(round)_labels.npy"]
    }

    /// The stages in order, each a closure over the settings.
    static func plan(settings: Settings, work: String, runtime: Runtime, dataset: VOCDataset, communicator: Communicator,
                     log: @escaping (String) -> Void, warn: @escaping (String) -> Void) throws -> [Stage] {
        var stages: [Stage] = []
        let baseline = settings.baselineWeights ?? "\(work)/\(weightsPath(round: 0, settings: settings))"
        func classifier(round: Int) -> String { round == 0 ? baseline : "\(work)/\(weightsPath(round: round, settings: settings))" }

        func train(round: Int, initPath: String?) throws -> [String: Double]? {
            let (ids, targets) = try Training.targets(round: round, k: settings.k, dataset: dataset, list: settings.trainList, work: work,
                                                      isRoot: communicator.isRoot, warn: warn)
            let network = try Training.makeNetwork(initPath: initPath, round: round, k: settings.k, widthDivisor: settings.widthDivisor,
                                                   seed: settings.seed, warn: warn)
            var options = round == 0
                ? Training.Options(round: 0, epochs: settings.baselineEpochs, globalBatch: settings.batch,
                                   learningRate: settings.baselineLearningRate, cropSize: settings.baselineCrop, work: work)
                : Training.Options(round: round, epochs: settings.epochs, globalBatch: settings.batch,
                                   learningRate: settings.learningRate, cropSize: settings.crop, work: work)
            options.longSide = settings.longSide[0]...settings.longSide[1]
            options.subcategoryWeight = settings.subcategoryWeight
            configure(&options, momentum: settings.momentum, weightDecay: settings.weightDecay, settings: settings, runtime: runtime)
            if round > 0 && !settings.finishSchedule { options.lastEpochToTrain = settings.usedEpochs[round - 1] }
            log("training round \(round): \(ids.count) images, \(options.epochs) epochs (schedule)\(options.lastEpochToTrain.map { ", stopping after epoch \($0), the checkpoint used" } ?? ""), lr \(options.learningRate), crop \(options.cropSize), global batch \(options.globalBatch) over \(communicator.size) rank(s), starting from \(initPath ?? "He initialisation")")
            Training.installSignalHandlers()
            defer { Training.removeSignalHandlers() }
            let summary = try Training.run(network: network, dataset: dataset, ids: ids, targets: targets, options: options,
                                           communicator: communicator, log: log)
            return summary.steps > 0 ? ["first_loss": summary.firstLoss, "last_loss": summary.lastLoss, "steps": Double(summary.steps)] : nil
        }

        /// A round's classifier and a validated list with its image labels.
        func inputs(round: Int, list name: String) throws -> (SCCAMNetwork, ImageList, ImageLabels) {
            let network = try SCCAMNetwork.fromWeights(classifier(round: round))
            let list = try dataset.list(name)
            try dataset.validate(list)
            let labels = try ImageLabels.load(dataset: dataset, ids: list.ids, cache: communicator.isRoot ? "\(work)/image_labels.tsv" : nil, warn: warn)
            return (network, list, labels)
        }

        func extract(round: Int) throws -> [String: Double]? {
            let (network, list, labels) = try inputs(round: round, list: settings.trainList)
            let summary = try FeatureExtraction.run(
                network: network, dataset: dataset, list: list, labels: labels,
                options: FeatureExtraction.Options(round: round, work: work, resume: true, checkpointEvery: runtime.checkpointImages,
                                                   decodeThreads: runtime.decodeThreads),
                communicator: communicator, log: log, warn: warn)
            return ["images": Double(summary.images), "dimension": Double(summary.dimension)]
        }

        if settings.baselineWeights == nil {
            stages.append(Stage(name: "train R0", inputs: [settings.initialWeights ?? "He initialisation", settings.trainList],
                                outputs: [weightsPath(round: 0, settings: settings)]) {
                try train(round: 0, initPath: settings.initialWeights)
            })
        }
        stages.append(Stage(name: "extract R0", inputs: [baseline], outputs: featureFiles(round: 0)) { try extract(round: 0) })
        for round in 1...settings.rounds {
            let features = featureFiles(round: round - 1).map { "\(work)/\($0)" }
            stages.append(Stage(name: "cluster R\(round)", inputs: features,
                                outputs: ["labels/R\(round)_subcategories.tsv", "labels/R\(round)_subcategories.npy", "labels/R\(round)_report.json"]) {
                let report = try SubcategoryClustering.run(
                    inputs: SubcategoryClustering.Inputs(features: features[0], images: features[1], labels: features[2]),
                    round: round, k: settings.k, restarts: settings.kmeansRestarts, seed: settings.kmeansSeed, strategy: .points,
                    output: "\(work)/labels", communicator: communicator, log: log, warn: warn)
                return ["images": Double(report.images), "inertia": report.inertia.compactMap { $0 }.reduce(0, +)]
            })
            let initPath: String? = switch settings.roundStart {
            case .initial: settings.initialWeights
            case .previous: classifier(round: round - 1)
            case .baseline: baseline
            }
            stages.append(Stage(name: "train R\(round)", inputs: ["\(work)/labels/R\(round)_subcategories.tsv", initPath ?? "He initialisation"],
                                outputs: [weightsPath(round: round, settings: settings)]) {
                try train(round: round, initPath: initPath)
            })
            if round < settings.rounds {
                stages.append(Stage(name: "extract R\(round)", inputs: [classifier(round: round)], outputs: featureFiles(round: round)) {
                    try extract(round: round)
                })
            }
        }
        let groundTruth = settings.groundTruth ?? "\(settings.vocRoot)/SegmentationClass"
        for round in evaluatedRounds(settings) {
            let folder = "infer/R\(round)"
            stages.append(Stage(name: "infer R\(round)", inputs: [classifier(round: round), settings.inferList], outputs: [folder]) {
                let (network, list, labels) = try inputs(round: round, list: settings.inferList)
                let summary = try Inference.run(
                    network: network, dataset: dataset, list: list, labels: labels,
                    options: Inference.Options(work: "\(work)/\(folder)", threshold: settings.threshold, scales: settings.scales,
                                               overlays: settings.overlays, crfAlpha: settings.crfAlpha),
                    communicator: communicator, log: log)
                return ["images": Double(summary.computed + summary.alreadyDone)]
            })
            stages.append(Stage(name: "eval R\(round)", inputs: ["\(work)/\(folder)", groundTruth], outputs: ["\(folder)/scores.json"]) {
                try evaluate(folder: "\(work)/\(folder)", groundTruth: groundTruth, threshold: settings.threshold,
                             crfAlpha: settings.crfAlpha, communicator: communicator, log: log)
            })
        }
        if let refine = settings.refine {
            stages += refinementStages(settings: settings, refine: refine, work: work, runtime: runtime, dataset: dataset,
                                       communicator: communicator, groundTruth: groundTruth, baseline: baseline,
                                       inputs: { try inputs(round: $0, list: $1) }, classifier: classifier, log: log, warn: warn)
        }
        if let segmentation = settings.segmentation, settings.refine != nil {
            stages += segmentationStages(settings: settings, segmentation: segmentation, work: work, runtime: runtime, dataset: dataset,
                                         communicator: communicator, groundTruth: groundTruth, log: log, warn: warn)
        }
        return stages
    }

    /// Scores a round's masks at the set threshold and sweeps the threshold
    /// over its CAMs; rank 0 writes scores.json beside them.
    static func evaluate(folder: String, groundTruth: String, threshold: Float, crfAlpha: Float? = nil, communicator: Communicator,
                         log: (String) -> Void) throws -> [String: Double] {
        let (matrix, images) = try Evaluation.run(predictions: "\(folder)/masks", groundTruth: groundTruth, list: nil, communicator: communicator)
        guard images > 0, let miou = matrix.meanIoU else {
            throw DataError("no mask in \(folder)/masks has a ground-truth file in \(groundTruth); give --ground-truth")
        }
        let thresholds = Evaluation.sweepThresholds
        let sweep = try Evaluation.sweep(cams: "\(folder)/cams", groundTruth: groundTruth, thresholds: thresholds, list: nil,
                                         communicator: communicator)
        let best = Evaluation.best(thresholds: thresholds, matrices: sweep)
        log(String(format: "%d image(s): mIoU %.4f at threshold %.2f; best threshold %.2f: mIoU %.4f", images, miou, threshold,
                   best.threshold, best.meanIoU))
        var result: [String: Double] = ["miou": miou, "threshold": Double(threshold), "best_miou": best.meanIoU,
                                        "best_threshold": Double(best.threshold), "images": Double(images)]
        var crfMeanIoU: Double?
        if let crfAlpha {
            let (crfMatrix, _) = try Evaluation.run(predictions: "\(folder)/masks_crf", groundTruth: groundTruth, list: nil,
                                                    communicator: communicator)
            crfMeanIoU = crfMatrix.meanIoU
            if let crfMeanIoU {
                result["crf_miou"] = crfMeanIoU
                log(String(format: "dCRF masks (alpha %g): mIoU %.4f", crfAlpha, crfMeanIoU))
            }
        }
        if communicator.isRoot {
            struct Scores: Encodable {
                let miou: Double, threshold: Float, best_miou: Double, best_threshold: Float, images: Int
                let class_iou: [Double?], sweep: [[Double]]
                let crf_alpha: Float?, crf_miou: Double?
            }
            let scores = Scores(miou: miou, threshold: threshold, best_miou: best.meanIoU, best_threshold: best.threshold, images: images,
                                class_iou: matrix.classIoU, sweep: zip(thresholds, sweep).map { [Double($0), $1.meanIoU ?? -1] },
                                crf_alpha: crfAlpha, crf_miou: crfMeanIoU)
            try AtomicFile.writeJSON(scores, to: "\(folder)/scores.json")
        }
        return result
    }
}
