import ArgumentParser
import Pipeline

/// The method's flags, shared by `pipeline` and `demo`: each overrides one
/// setting of `SCCAMPipeline.Settings` (whose defaults are the reference's,
/// or the demo's recipe); what is not given keeps them.
struct MethodOptions: ParsableArguments {
    // The classifier rounds.
    @Option(help: "Rounds of sub-category discovery (3).") var rounds: Int?
    @Option(help: "Sub-categories per class (10).") var k: Int?
    @Option(help: "k-means restarts per class (10).") var nInit: Int?
    @Option(help: "k-means seed (scikit-learn's random_state; the reference uses 0).") var kmeansSeed: UInt64?
    @Option(help: "Seed of data order, augmentation, dropout and head initialisation (0).") var seed: UInt64?
    @Option(help: "Global batch size, split over the ranks (16).") var batch: Int?
    @Option(help: "Round 0: epochs (psa: 15).") var baselineEpochs: Int?
    @Option(help: "Round 0: base learning rate (psa: 0.1).") var baselineLr: Float?
    @Option(help: "Round 0: crop size (psa: 448).") var baselineCrop: Int?
    @Option(help: "Rounds >= 1: epochs of the learning-rate schedule (61).") var epochs: Int?
    @Option(help: "Rounds >= 1: base learning rate (0.01).") var lr: Float?
    @Option(help: "Rounds >= 1: crop size (224).") var crop: Int?
    @Option(help: "Training resize of the long side, min,max in pixels (the reference's 256,512).") var longSide: ListArguments.SizeRange?
    @Option(help: "Per round, the epoch whose checkpoint is used for the next features and as the result (the reference's 30,40,50).")
    var usedEpochs: ListArguments.Integers?
    @Flag(help: "Train every epoch of the schedule even past the checkpoint that is used.") var finishSchedule = false
    @Option(help: "What rounds >= 1 start from: initial (the --init weights, every round, as the reference), previous (the previous round's classifier) or baseline (the round-0 classifier).")
    var roundStart: SCCAMPipeline.RoundStart?
    @Option(help: "SGD momentum (default: the reference's effective value, 0.0005; the demo: 0.9).") var momentum: Float?
    @Option(help: "Weight decay (5e-4).") var weightDecay: Float?
    @Option(help: "Weight of the sub-category loss (5).") var subcategoryWeight: Float?
    @Option(help: "Training checkpoints every this many epochs (10).") var checkpointEvery: Int?
    // CAMs.
    @Flag(help: "Infer and score every round's classifier (round 0 included), not only the last.") var evaluateAllRounds = false
    @Option(help: "Background threshold of the masks (SC-CAM: 0.15).") var threshold: Float?
    @Option(help: "Inference scales, comma-separated; each runs plain and flipped (1,0.5,1.5,2).") var scales: ListArguments.Scales?
    @Flag(help: "Do not write overlay pictures.") var noOverlays = false
    @Option(help: ArgumentHelp("Also make and score dCRF masks (masks_crf/): the dense CRF of [(1 - max CAM)^ALPHA, CAMs], SC-CAM's optional post-processing.", valueName: "alpha"))
    var crf: Float?
    // Affinity labels, AffinityNet and the random walk.
    @Flag(help: "Stop at the CAMs: no affinity labels, AffinityNet or random walk.") var noRefine = false
    @Option(help: "Whose CAMs AffinityNet learns from and the walk propagates (default: the last round; psa used its baseline's, round 0; SC-CAM ran psa's AffinityNet on its round-3 CAMs).")
    var refineCamsRound: Int?
    @Option(help: "Images AffinityNet trains on (default: the training list, as psa's train_aug).") var affList: String?
    @Option(help: "Where AffinityNet starts: initial (the --init weights, as psa) or baseline (the round-0 classifier's backbone).")
    var affStart: SCCAMPipeline.AffinityStart?
    @Option(help: "Affinity labels: background exponent of the CRF that picks confident foreground (psa: 4).") var affLowAlpha: Float?
    @Option(help: "Affinity labels: background exponent of the CRF that picks confident background (psa: 32).") var affHighAlpha: Float?
    @Option(help: "AffinityNet: epochs (psa: 8).") var affEpochs: Int?
    @Option(help: "AffinityNet: global batch (psa: 8).") var affBatch: Int?
    @Option(help: "AffinityNet: base learning rate (psa: 0.1).") var affLr: Float?
    @Option(help: "AffinityNet: crop size, a multiple of 8 (psa: 448).") var affCrop: Int?
    @Option(help: "AffinityNet: run each rank's share in parts of this many images (same result, less memory).") var affMicroBatch: Int?
    @Option(help: "Random walk: background exponent (psa: 16).") var walkAlpha: Double?
    @Option(help: "Random walk: affinity power (psa: 8).") var walkBeta: Double?
    @Option(help: "Random walk: 2^logt steps (psa: 8).") var walkLogt: Int?
    @Option(help: "Random walk: the pairs whose affinities make T, psa or whole-grid (see `sccam refine --help`; pipeline: psa, demo: whole-grid).")
    var walkPairs: PairGeometry.Coverage?
    // DeepLab-v2.
    @Flag(help: "Stop at the pseudo-labels: no segmentation network (train-seg, segment on the validation list).") var noSegmentation = false
    @Option(help: "Segmentation network: initial weights (deeplab-pytorch's deeplabv1_resnet101-coco.pth, the DeepLab init.caffemodel, or a torchvision ResNet-101 .pth); none = from scratch.")
    var segInit: String?
    @Option(help: "Segmentation network: ResNet-101 width divisor (1 = the real network).") var segWidthDivisor: Int?
    @Option(help: "Segmentation network: iterations (deeplab-pytorch: 20,000).") var segIterations: Int?
    @Option(help: "Segmentation network: images per sub-batch (5).") var segBatch: Int?
    @Option(help: "Segmentation network: sub-batches per iteration (2).") var segIterSize: Int?
    @Option(help: "Segmentation network: base learning rate (deeplab-pytorch: 2.5e-4; SC-CAM used \"a bit\" less).") var segLr: Float?
    @Option(help: "Segmentation network: crop size (321).") var segCrop: Int?
    @Option(help: "Segmentation network: also CRF post-processing, on the reference's input (reference) or the image (raw).")
    var segCrf: SegmentStage.CRFImage?
    @Option(help: "The list the segmentation network is scored on (val).") var valList: String?
    // Knobs that do not change the results.
    @Option(help: "Background threads decoding images.") var decodeThreads = StageRuntime().decodeThreads
    @Option(help: "Print and log training every this many steps (default 10; the demo: 50).") var logEvery: Int?

    func runtime(exchange: ExchangeOptions, logEvery defaultLogEvery: Int = StageRuntime().logEvery) -> SCCAMPipeline.Runtime {
        var runtime = SCCAMPipeline.Runtime()
        (runtime.stages.decodeThreads, runtime.stages.logEvery) = (decodeThreads, logEvery ?? defaultLogEvery)
        (runtime.stages.exchange, runtime.affinityMicroBatch) = (exchange.settings, affMicroBatch)
        return runtime
    }

    /// Sets what was given on the command line; the rest keeps the caller's defaults.
    func apply(to s: inout SCCAMPipeline.Settings, compute: ComputeOptions, exchange: ExchangeOptions) {
        (s.rounds, s.k, s.kmeansRestarts, s.kmeansSeed) = (rounds ?? s.rounds, k ?? s.k, nInit ?? s.kmeansRestarts, kmeansSeed ?? s.kmeansSeed)
        (s.seed, s.batch, s.baselineEpochs) = (seed ?? s.seed, batch ?? s.batch, baselineEpochs ?? s.baselineEpochs)
        (s.baselineLearningRate, s.baselineCrop) = (baselineLr ?? s.baselineLearningRate, baselineCrop ?? s.baselineCrop)
        (s.epochs, s.learningRate, s.crop, s.longSide) = (epochs ?? s.epochs, lr ?? s.learningRate, crop ?? s.crop, longSide?.sizes ?? s.longSide)
        (s.usedEpochs, s.finishSchedule, s.roundStart) = (usedEpochs?.values ?? s.usedEpochs, finishSchedule, roundStart ?? s.roundStart)
        (s.momentum, s.weightDecay, s.subcategoryWeight) = (momentum ?? s.momentum, weightDecay ?? s.weightDecay,
                                                            subcategoryWeight ?? s.subcategoryWeight)
        (s.checkpointEvery, s.evaluateAllRounds) = (checkpointEvery ?? s.checkpointEvery, s.evaluateAllRounds || evaluateAllRounds)
        (s.threshold, s.scales, s.overlays, s.crfAlpha) = (threshold ?? s.threshold, scales?.values ?? s.scales, !noOverlays, crf)
        (s.convolutionPrecision, s.gradientExchange) = (compute.recordedPrecision, exchange.recordedWireFormat)
        if noRefine {
            s.refine = nil
        } else if var r = s.refine {
            (r.camsRound, r.trainList, r.start) = (refineCamsRound ?? r.camsRound, affList ?? r.trainList, affStart ?? r.start)
            (r.lowAlpha, r.highAlpha, r.epochs) = (affLowAlpha ?? r.lowAlpha, affHighAlpha ?? r.highAlpha, affEpochs ?? r.epochs)
            (r.batch, r.learningRate, r.crop) = (affBatch ?? r.batch, affLr ?? r.learningRate, affCrop ?? r.crop)
            (r.walk.alpha, r.walk.beta) = (walkAlpha ?? r.walk.alpha, walkBeta ?? r.walk.beta)
            (r.walk.logT, r.walk.pairs) = (walkLogt ?? r.walk.logT, walkPairs ?? r.walk.pairs)
            s.refine = r
        }
        if noSegmentation || s.refine == nil {
            s.segmentation = nil
        } else if var g = s.segmentation {
            (g.initialWeights, g.widthDivisor, g.iterations) = (segInit ?? g.initialWeights, segWidthDivisor ?? g.widthDivisor,
                                                                segIterations ?? g.iterations)
            (g.batch, g.iterSize, g.learningRate) = (segBatch ?? g.batch, segIterSize ?? g.iterSize, segLr ?? g.learningRate)
            (g.crop, g.crf, g.validationList) = (segCrop ?? g.crop, segCrf?.rawValue ?? g.crf, valList ?? g.validationList)
            s.segmentation = g
        }
    }
}

extension SCCAMPipeline.RoundStart: ExpressibleByArgument {}
extension SCCAMPipeline.AffinityStart: ExpressibleByArgument {}
