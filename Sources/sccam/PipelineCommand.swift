import ArgumentParser
import Data
import Foundation
import Network
import Pipeline

struct PipelineRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "The whole method: baseline features, three rounds of cluster/train/extract, CAMs and scores.",
        discussion: """
            Stages, in order: train R0 (only without --baseline: psa's settings, crop 448, lr 0.1, 15 \
            epochs), extract R0; then for each round r: cluster Rr (k-means per class on the previous \
            round's features), train Rr (crop 224, lr 0.01, the 61-epoch schedule; by default it stops \
            after the checkpoint the method uses, --used-epochs 30,40,50), extract Rr (not after the \
            last round); finally infer (multi-scale + flip CAMs on --infer-list) and eval (mIoU at \
            --threshold and the best threshold of a sweep) for the last round, or for every round with \
            --evaluate-all-rounds. Every stage is recorded in WORK/run.json. Rerunning the same command \
            skips finished stages and resumes an interrupted one: training from its checkpoint (SIGTERM \
            or SIGUSR1 writes one and exits with code 4), extraction from each rank's saved part, \
            inference from the images already written. A rerun with other settings is refused.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var convolution: ConvolutionOptions
    @OptionGroup var exchange: ExchangeOptions
    @OptionGroup var method: MethodOptions

    @OptionGroup var voc: VOCRootOption

    @Option(help: "Work folder: run.json, features/, labels/, weights/, logs/, infer/.")
    var work: String

    @Option(help: "Initial backbone weights, ImageNet ResNet-38 in the reference (MXNet .params, PyTorch .pth or safetensors). Without it, He initialisation.")
    var `init`: String?

    @Option(help: "A trained round-0 classifier (psa's res38_cls.pth, as SC-CAM uses). Without it the pipeline trains one from --init.")
    var baseline: String?

    @Option(help: "Network width divisor when no weight file decides it (1 = the real ResNet-38).")
    var widthDivisor: Int = 1

    @Option(help: "Training images (train_aug, or a list file).")
    var trainList: String = "train_aug"

    @Option(help: "Images to infer CAMs for and score (train, as the reference reports).")
    var inferList: String = "train"

    @Option(help: "Ground-truth masks for scoring (default VOC_ROOT/SegmentationClass).")
    var groundTruth: String?

    func validate() throws {
        guard NetworkConfiguration.widthDivisors.contains(widthDivisor) else { throw ValidationError("--width-divisor must be a power of two up to 64") }
        try method.validate()
    }

    func run() throws {
        let job = Job.start(runtime)
        convolution.apply()
        job.run {
            try job.prepareWork(work)
            var settings = SCCAMPipeline.Settings(vocRoot: voc.root)
            settings.initialWeights = `init`
            settings.baselineWeights = baseline
            settings.widthDivisor = widthDivisor
            settings.trainList = trainList
            settings.inferList = inferList
            settings.groundTruth = groundTruth
            try method.apply(to: &settings)
            settings.convolutionPrecision = convolution.recordedPrecision
            settings.gradientExchange = exchange.recordedWireFormat
            var runtime = method.runtime()
            runtime.exchange = exchange.settings
            try PipelineReport.run(settings: settings, work: work, runtime: runtime, job: job)
        }
    }
}

/// Method and schedule flags, shared by `pipeline` and `demo`.
struct MethodOptions: ParsableArguments {
    @Option(help: "Rounds of sub-category discovery.")
    var rounds: Int?

    @Option(help: "Sub-categories per class.")
    var k: Int?

    @Option(help: "k-means restarts per class.")
    var nInit: Int = 10

    @Option(help: "k-means seed (scikit-learn's random_state; the reference uses 0).")
    var kmeansSeed: UInt64 = 0

    @Option(help: "Seed of data order, augmentation, dropout and head initialisation.")
    var seed: UInt64 = 0

    @Option(help: "Global batch size, split over the ranks.")
    var batch: Int?

    @Option(help: "Round 0: epochs (psa: 15).")
    var baselineEpochs: Int?

    @Option(help: "Round 0: base learning rate (psa: 0.1).")
    var baselineLr: Float?

    @Option(help: "Round 0: crop size (psa: 448).")
    var baselineCrop: Int?

    @Option(help: "Rounds >= 1: epochs of the learning-rate schedule (61).")
    var epochs: Int?

    @Option(help: "Rounds >= 1: base learning rate (0.01).")
    var lr: Float?

    @Option(help: "Rounds >= 1: crop size (224).")
    var crop: Int?

    @Option(help: "Training resize of the long side, min,max in pixels (the reference's 256,512).")
    var longSide: String?

    @Option(help: "Per round, the epoch whose checkpoint is used for the next features and as the result (the reference's 30,40,50).")
    var usedEpochs: String?

    @Flag(help: "Train every epoch of the schedule even past the checkpoint that is used.")
    var finishSchedule = false

    @Option(help: "What rounds >= 1 start from: initial (the --init weights, every round, as the reference), previous (the previous round's classifier) or baseline (the round-0 classifier).")
    var roundStart: String?

    @Option(help: "SGD momentum (default: the reference's effective value, 0.0005; the demo: 0.9).")
    var momentum: Float?

    @Option(help: "Weight decay.")
    var weightDecay: Float = PolySGD.referenceWeightDecay

    @Option(help: "Weight of the sub-category loss.")
    var subcategoryWeight: Float = 5

    @Option(help: "Training checkpoints every this many epochs.")
    var checkpointEvery: Int = 10

    @Flag(help: "Infer and score every round's classifier (round 0 included), not only the last.")
    var evaluateAllRounds = false

    @Option(help: "Background threshold of the masks (SC-CAM: 0.15).")
    var threshold: Float = 0.15

    @Option(help: "Inference scales, comma-separated; each runs plain and flipped.")
    var scales: String = "1,0.5,1.5,2"

    @Flag(help: "Do not write overlay pictures.")
    var noOverlays = false

    @Option(help: ArgumentHelp("Also make and score dCRF masks (masks_crf/): the dense CRF of [(1 - max CAM)^ALPHA, CAMs], SC-CAM's optional post-processing.", valueName: "alpha"))
    var crf: Float?

    @Flag(help: "Stop at the CAMs: no affinity labels, AffinityNet or random walk.")
    var noRefine = false

    @Option(help: "Whose CAMs AffinityNet learns from and the walk propagates (default: the last round; psa used its baseline's, round 0; SC-CAM ran psa's AffinityNet on its round-3 CAMs).")
    var refineCamsRound: Int?

    @Option(help: "Images AffinityNet trains on (default: the training list, as psa's train_aug).")
    var affList: String?

    @Option(help: "Where AffinityNet starts: initial (the --init weights, as psa) or baseline (the round-0 classifier's backbone).")
    var affStart: String?

    @Option(help: "Affinity labels: background exponent of the CRF that picks confident foreground (psa: 4).")
    var affLowAlpha: Float?

    @Option(help: "Affinity labels: background exponent of the CRF that picks confident background (psa: 32).")
    var affHighAlpha: Float?

    @Option(help: "AffinityNet: epochs (psa: 8).")
    var affEpochs: Int?

    @Option(help: "AffinityNet: global batch (psa: 8).")
    var affBatch: Int?

    @Option(help: "AffinityNet: base learning rate (psa: 0.1).")
    var affLr: Float?

    @Option(help: "AffinityNet: crop size, a multiple of 8 (psa: 448).")
    var affCrop: Int?

    @Option(help: "AffinityNet: run each rank's share in parts of this many images (same result, less memory).")
    var affMicroBatch: Int?

    @Option(help: "Random walk: background exponent (psa: 16).")
    var walkAlpha: Double?

    @Option(help: "Random walk: affinity power (psa: 8).")
    var walkBeta: Double?

    @Option(help: "Random walk: 2^logt steps (psa: 8).")
    var walkLogt: Int?

    @Option(help: "Random walk: the pairs whose affinities make T, psa or whole-grid (see `sccam refine --help`; pipeline: psa, demo: whole-grid).")
    var walkPairs: PairGeometry.Coverage?

    @Flag(help: "Stop at the pseudo-labels: no segmentation network (train-seg, segment on the validation list).")
    var noSegmentation = false

    @Option(help: "Segmentation network: initial weights (deeplab-pytorch's deeplabv1_resnet101-coco.pth, the DeepLab init.caffemodel, or a torchvision ResNet-101 .pth); none = from scratch.")
    var segInit: String?

    @Option(help: "Segmentation network: ResNet-101 width divisor (1 = the real network).")
    var segWidthDivisor: Int?

    @Option(help: "Segmentation network: iterations (deeplab-pytorch: 20,000).")
    var segIterations: Int?

    @Option(help: "Segmentation network: images per sub-batch (5).")
    var segBatch: Int?

    @Option(help: "Segmentation network: sub-batches per iteration (2).")
    var segIterSize: Int?

    @Option(help: "Segmentation network: base learning rate (deeplab-pytorch: 2.5e-4; SC-CAM used \"a bit\" less).")
    var segLr: Float?

    @Option(help: "Segmentation network: crop size (321).")
    var segCrop: Int?

    @Option(help: "Segmentation network: also CRF post-processing, on the reference's input (reference) or the image (raw).")
    var segCrf: String?

    @Option(help: "The list the segmentation network is scored on (val).")
    var valList: String?

    @Option(help: "Background threads decoding images.")
    var decodeThreads: Int = 1

    @Option(help: "Print and log training every this many steps (default 10; the demo: 50).")
    var logEvery: Int?

    func validate() throws {
        guard decodeThreads >= 1, (logEvery ?? 1) >= 1 else { throw ValidationError("--decode-threads and --log-every must be at least 1") }
        if let roundStart, SCCAMPipeline.RoundStart(rawValue: roundStart) == nil {
            throw ValidationError("--round-start must be initial, previous or baseline")
        }
        _ = try parsedUsedEpochs()
        _ = try parsedLongSide()
        _ = try parsedScales()
        if let crf, !(crf > 0) { throw ValidationError("--crf takes a positive alpha (psa uses 4 and 32)") }
        if let affStart, SCCAMPipeline.AffinityStart(rawValue: affStart) == nil {
            throw ValidationError("--aff-start must be initial or baseline")
        }
        if let affMicroBatch, affMicroBatch < 1 { throw ValidationError("--aff-micro-batch must be at least 1") }
    }

    func parsedUsedEpochs() throws -> [Int]? {
        guard let usedEpochs else { return nil }
        guard let values: [Int] = ListArguments.values(usedEpochs) else { throw ValidationError("--used-epochs must be comma-separated epoch numbers, like 30,40,50") }
        return values
    }

    func parsedLongSide() throws -> [Int]? {
        guard let longSide else { return nil }
        guard let range = ListArguments.sizeRange(longSide) else { throw ValidationError("--long-side must be min,max in pixels, like 256,512") }
        return [range.lowerBound, range.upperBound]
    }

    func parsedScales() throws -> [Double] {
        guard let values = ListArguments.scales(scales) else { throw ValidationError("--scales must list positive numbers") }
        return values
    }

    func runtime(defaultLogEvery: Int = 10) -> SCCAMPipeline.Runtime {
        var runtime = SCCAMPipeline.Runtime()
        runtime.decodeThreads = decodeThreads
        runtime.logEvery = logEvery ?? defaultLogEvery
        runtime.affinityMicroBatch = affMicroBatch
        return runtime
    }

    /// Sets what was given on the command line; the rest keeps the caller's defaults.
    func apply(to settings: inout SCCAMPipeline.Settings) throws {
        if let rounds { settings.rounds = rounds }
        if let k { settings.k = k }
        settings.kmeansRestarts = nInit
        settings.kmeansSeed = kmeansSeed
        settings.seed = seed
        if let batch { settings.batch = batch }
        if let baselineEpochs { settings.baselineEpochs = baselineEpochs }
        if let baselineLr { settings.baselineLearningRate = baselineLr }
        if let baselineCrop { settings.baselineCrop = baselineCrop }
        if let epochs { settings.epochs = epochs }
        if let lr { settings.learningRate = lr }
        if let crop { settings.crop = crop }
        if let used = try parsedUsedEpochs() { settings.usedEpochs = used }
        if let range = try parsedLongSide() { settings.longSide = range }
        settings.finishSchedule = finishSchedule
        if let roundStart { settings.roundStart = SCCAMPipeline.RoundStart(rawValue: roundStart)! }
        if let momentum { settings.momentum = momentum }
        settings.weightDecay = weightDecay
        settings.subcategoryWeight = subcategoryWeight
        settings.checkpointEvery = checkpointEvery
        settings.evaluateAllRounds = settings.evaluateAllRounds || evaluateAllRounds
        settings.threshold = threshold
        settings.scales = try parsedScales()
        settings.overlays = !noOverlays
        settings.crfAlpha = crf
        if noRefine {
            settings.refine = nil
        } else if var refine = settings.refine {
            if let refineCamsRound { refine.camsRound = refineCamsRound }
            if let affList { refine.trainList = affList }
            if let affStart { refine.start = SCCAMPipeline.AffinityStart(rawValue: affStart)! }
            if let affLowAlpha { refine.lowAlpha = affLowAlpha }
            if let affHighAlpha { refine.highAlpha = affHighAlpha }
            if let affEpochs { refine.epochs = affEpochs }
            if let affBatch { refine.batch = affBatch }
            if let affLr { refine.learningRate = affLr }
            if let affCrop { refine.crop = affCrop }
            if let walkAlpha { refine.walk.alpha = walkAlpha }
            if let walkBeta { refine.walk.beta = walkBeta }
            if let walkLogt { refine.walk.logT = walkLogt }
            if let walkPairs { refine.walk.pairs = walkPairs }
            settings.refine = refine
        }
        if noSegmentation || settings.refine == nil {
            settings.segmentation = nil
        } else if var segmentation = settings.segmentation {
            if let segInit { segmentation.initialWeights = segInit }
            if let segWidthDivisor { segmentation.widthDivisor = segWidthDivisor }
            if let segIterations { segmentation.iterations = segIterations }
            if let segBatch { segmentation.batch = segBatch }
            if let segIterSize { segmentation.iterSize = segIterSize }
            if let segLr { segmentation.learningRate = segLr }
            if let segCrop { segmentation.crop = segCrop }
            if let segCrf { segmentation.crf = segCrf }
            if let valList { segmentation.validationList = valList }
            settings.segmentation = segmentation
        }
    }
}

/// Runs the pipeline for a command and prints its scores.
enum PipelineReport {
    static func run(settings: SCCAMPipeline.Settings, work: String, runtime: SCCAMPipeline.Runtime, job: Job) throws {
        let summary: SCCAMPipeline.Summary
        do {
            summary = try SCCAMPipeline.run(settings: settings, work: work, runtime: runtime, communicator: job.communicator,
                                            log: job.log, warn: job.warn)
        } catch let stopped as Training.Stopped {
            job.log("\(stopped.checkpoint) written; run the same command again to continue")
            throw ExitCode(4)
        }
        job.log(String(format: "pipeline finished: %d stage(s) run, %d already done, in %.1f s", summary.stagesRun, summary.stagesSkipped, summary.seconds))
        defer {
            // The results are on disk already: a report that cannot be written is a warning, not a failed run.
            if job.isRoot {
                do { job.log("report: \(try RunReport.write(work: work)) (open it in a browser)") } catch {
                    job.warn("could not write the report: \(error); `sccam report \(work)` tries again")
                }
            }
        }
        guard !summary.scores.isEmpty else { return }
        let crf = summary.scores.contains { $0.crfMeanIoU != nil }
        job.log("round  mIoU (threshold)      best threshold  best mIoU" + (crf ? "  dCRF mIoU" : ""))
        for score in summary.scores {
            job.log(String(format: "R%-5d %.4f (%.2f)         %.2f            %.4f", score.round, score.meanIoU, score.threshold,
                           score.bestThreshold, score.bestMeanIoU) + (score.crfMeanIoU.map { String(format: "     %.4f", $0) } ?? ""))
        }
        if let pseudo = summary.pseudoLabelMeanIoU {
            let best = summary.scores.map { max($0.meanIoU, $0.bestMeanIoU) }.max() ?? .nan
            job.log(String(format: "pseudo-labels after the random walk: mIoU %.4f (best CAM masks above: %.4f; %+.4f)", pseudo, best, pseudo - best))
            job.log("pseudo-labels: \(work)/refine/{id}.png (grey class ids), refine_color/ and refine_overlays/ beside them; scores in refine/scores.json")
        }
        if let segmentation = summary.segmentationMeanIoU {
            let list = settings.segmentation?.validationList ?? "val"
            job.log(String(format: "segmentation network (DeepLab-v2) on %@: mIoU %.4f", list, segmentation)
                    + (summary.segmentationCRFMeanIoU.map { String(format: ", with the CRF %.4f", $0) } ?? ""))
            job.log("segmentation: \(work)/segment/{id}.png, segment_color/ and segment_overlays/ beside them; scores in segment/scores.json")
        }
        job.log("scores: \(work)/infer/R{round}/scores.json; masks and overlays beside them; stages: \(work)/run.json")
    }
}
