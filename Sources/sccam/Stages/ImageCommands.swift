import ArgumentParser
import Pipeline

struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extract the pooled feature of every image with a round's classifier.",
        discussion: """
            Runs the classifier in eval mode on each image of the list at its native size (the reference's view \
            for features: scale 1, not flipped) and keeps the global average of conv6. Writes \
            WORK/features/R{round}_features.npy (float32 [N, D], list order), R{round}_images.txt and \
            R{round}_labels.npy (the image-level labels, [N, 20]), which `sccam cluster --round {round + 1} --work \
            WORK` reads. Ranks split the list; each checkpoints its finished part, so --resume continues a killed \
            run. Default list: \(ExtractStage.Settings(weights: "").list).
            """)

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var stage: StageOptions
    @Option(help: "The classifier: safetensors, PyTorch .pth or MXNet .params (recognised by content).") var weights: String
    @Option(help: "The round of that classifier (0 = the baseline).") var round = 0
    @Flag(help: "Continue a killed extraction, keeping the images each rank had finished.") var resume = false
    @Option(help: "Images between a rank's checkpoints.") var checkpointEvery = StageRuntime().checkpointImages
    @Option(help: "Background threads decoding images.") var decodeThreads = StageRuntime().decodeThreads
    @Flag(help: "Accept weights without classification heads (extraction uses only the backbone).") var allowMissingHeads = false
    @Option(help: ArgumentHelp("Test hook: exit after this many images.", visibility: .private)) var debugStopAfter: Int?

    func run() throws {
        var settings = ExtractStage.Settings(weights: weights, round: round)
        (settings.list, settings.resume) = (stage.data.list ?? settings.list, resume)
        (settings.allowMissingHeads, settings.stopAfter) = (allowMissingHeads, debugStopAfter)
        var runtime = StageRuntime()
        (runtime.checkpointImages, runtime.decodeThreads) = (checkpointEvery, decodeThreads)
        Job.start(compute).run(ExtractStage.self, settings, stage, runtime: runtime)
    }
}

struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Multi-scale + flip class activation maps, masks and overlays.",
        discussion: """
            For each image of the list: CAMs at each scale and its flip, resized to the image (bilinear, \
            half-pixel), masked by the image labels, summed and normalised per class as the reference does (spec \
            6.2). Writes into WORK: cams/{id}.npy (float32 [C, H, W] for the C present classes, real scores) with \
            cams/{id}.classes.npy (int32 [C], class indices 0-19), masks/{id}.png (VOC palette; background below \
            the threshold), masks_sub/{id}.png (the sub-category path, rounds >= 1) and overlays/{id}.png (the \
            image, then a heat map per present class). With --crf ALPHA also masks_crf/{id}.png from the dense \
            CRF; score them with sccam eval --pred WORK/masks_crf. Finished images are skipped, so a killed run \
            resumes. Default list: \(InferStage.Settings(weights: "").list).
            """)

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var stage: StageOptions
    @Option(help: "The classifier (safetensors, PyTorch .pth; recognised by content). It must have its heads.") var weights: String
    @Option(help: "Background threshold (SC-CAM 0.15; psa used 0.2).") var threshold = InferStage.Settings(weights: "").threshold
    @Option(help: "Comma-separated scales; each is run plain and flipped (default 1,0.5,1.5,2).") var scales: ListArguments.Scales?
    @Flag(help: "Do not write the overlay pictures.") var noOverlays = false
    @Option(help: ArgumentHelp("Also write masks_crf/{id}.png: the dense CRF (psa's parameters, 10 iterations) of [(1 - max CAM)^ALPHA, CAMs], SC-CAM's optional dCRF post-processing (psa uses 4 and 32).", valueName: "alpha"))
    var crf: Float?

    func run() throws {
        var settings = InferStage.Settings(weights: weights)
        (settings.list, settings.threshold, settings.scales) = (stage.data.list ?? settings.list, threshold, scales?.values ?? settings.scales)
        (settings.overlays, settings.crfAlpha) = (!noOverlays, crf)
        Job.start(compute).run(InferStage.self, settings, stage)
    }
}

struct AffinityLabelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "affinity-labels",
        abstract: "CRF score stacks from saved CAMs: what AffinityNet's training labels are made of.",
        discussion: """
            For every image of the list, from its CAMs (sccam infer's cams/{id}.npy and .classes.npy, any round): \
            the stacks [(1 - max CAM)^alpha, CAMs of the present classes] for alpha = --low-alpha and \
            --high-alpha, each through the dense CRF on the original image (10 iterations, psa's parameters), as \
            psa's infer_cls.py makes them (spec 9.2). Writes WORK/affinity/{id}.npy, float32 [2, 1 + C, H, W] \
            (low then high alpha), and WORK/affinity/{id}.classes.npy, int32 [C]. Scores are kept at full \
            resolution, because training crops image and scores together before pooling them 8 x 8: about 3.8 MB \
            per VOC image, some 35 GB for train_aug's 10,582 images. Ranks split the list; finished images are \
            skipped on a rerun. Default list: \(AffinityLabelStage.Settings(cams: "").list).
            """)

    @OptionGroup var threads: ThreadOptions
    @OptionGroup var stage: StageOptions
    @Option(help: "Folder of sccam infer's CAMs ({id}.npy and {id}.classes.npy), e.g. WORK/cams.") var cams: String
    @Option(help: "Alpha of the low-alpha stack (more background; psa: 4).") var lowAlpha = AffinityLabelStage.Settings(cams: "").lowAlpha
    @Option(help: "Alpha of the high-alpha stack (less background; psa: 32).") var highAlpha = AffinityLabelStage.Settings(cams: "").highAlpha

    func run() throws {
        var settings = AffinityLabelStage.Settings(cams: cams)
        (settings.list, settings.lowAlpha, settings.highAlpha) = (stage.data.list ?? settings.list, lowAlpha, highAlpha)
        Job.start(threads).run(AffinityLabelStage.self, settings, stage) { "\($0) to \(WorkLayout(stage.work).affinityLabels.path)" }
    }
}

struct RefineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refine",
        abstract: "Pixel-level pseudo-labels: AffinityNet's random walk of saved CAMs (psa's infer_aff.py).",
        discussion: """
            For every image of the list, at its native size: the normalised image, zero-padded to multiples of \
            8, through AffinityNet; its radius-5 pair affinities, raised to --beta and column-normalised into a \
            transition matrix T; the CAM scores ((1 - max CAM)^alpha for the background, then the 20 classes), 8 \
            x 8 mean-pooled, multiplied by T^(2^logt); upsampled bilinearly and the argmax taken (spec 9.4). T is \
            never formed densely: 2^logt sparse products give psa's dense squaring's result at a tiny fraction of \
            the work. Writes WORK/refine/{id}.png (grey class ids, 0 = background, as psa writes them), \
            WORK/refine_color/{id}.png (VOC palette) and WORK/refine_overlays/{id}.png. Score them with `sccam \
            eval --pred WORK/refine --gt ...`. Ranks split the list; finished images are skipped on a rerun. \
            Default list: \(RefineStage.Settings(affinityWeights: "", cams: "").list).
            """)

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var stage: StageOptions
    @Option(help: "AffinityNet weights: sccam train-aff's safetensors or psa's resnet38_aff state dict (.pth).") var affWeights: String
    @Option(help: "Folder of sccam infer's CAMs ({id}.npy and {id}.classes.npy), e.g. WORK/cams.") var cams: String
    @Option(help: "Exponent of the background score (1 - max CAM)^alpha (psa: 16).") var alpha = RandomWalk.Parameters().alpha
    @Option(help: "Power the affinities are raised to (psa: 8).") var beta = RandomWalk.Parameters().beta
    @Option(help: "The walk takes 2^logt steps (psa: 8, i.e. 256).") var logt = RandomWalk.Parameters().logT
    @Option(help: ArgumentHelp(
        "The pairs whose affinities make T: psa (default) or whole-grid.",
        discussion: """
            psa pairs only the cells whose 34 radius-5 targets all lie inside the grid (rows 0..h-5, columns \
            4..w-5), as in training, so the four border columns on each side and the four bottom rows reach each \
            other only through the inner cells. whole-grid pairs every two cells closer than the radius: the same \
            affinities, also along the borders. It matters on small grids (a 96-pixel image has 32 psa \
            from-cells of 144).
            """))
    var pairs = RandomWalk.Parameters().pairs
    @Flag(help: "Do not write the overlay pictures.") var noOverlays = false

    func run() throws {
        var settings = RefineStage.Settings(affinityWeights: affWeights, cams: cams)
        (settings.list, settings.overlays) = (stage.data.list ?? settings.list, !noOverlays)
        settings.walk = RandomWalk.Parameters(alpha: alpha, beta: beta, logT: logt, pairs: pairs)
        Job.start(compute).run(RefineStage.self, settings, stage) {
            $0.described(as: "refined") + "; labels in \(WorkLayout(stage.work).pseudoLabels.labels.path)"
        }
    }
}

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Segment images with a trained DeepLab-v2: multi-scale inference, optional CRF (deeplab-pytorch's main.py test and crf).",
        discussion: """
            Per image at its native size (no padding, batch 1): the BGR image less the mean through the MSC \
            network (scales 1, 0.5, 0.75, pixel-wise max of the logits), the logits upsampled bilinearly to the \
            image, softmax, argmax. Writes WORK/segment/{id}.png (grey class ids), WORK/segment_color/ (VOC \
            palette) and WORK/segment_overlays/. With --crf, the dense CRF with the reference's parameters (10 \
            iterations; Gaussian 1, 3; bilateral 67, 3, 4) on the probabilities, into WORK/segment_crf/: --crf \
            reference feeds the CRF what main.py crf feeds it (the mean-subtracted BGR image cast to uint8 with \
            wrap-around: the reference's scores), --crf raw the image itself (demo.py's). Ranks split the list; \
            finished images are skipped on a rerun. Score with `sccam eval --pred WORK/segment --gt \
            VOC/SegmentationClass`. Default list: \(SegmentStage.Settings(weights: "").list).
            """)

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var stage: StageOptions
    @Option(help: "DeepLab weights: sccam train-seg's safetensors or deeplab-pytorch's checkpoint (.pth).") var weights: String
    @Option(help: "Channel divisor of the network the weights belong to.") var widthDivisor = SegmentStage.Settings(weights: "").widthDivisor
    @Option(help: "Also the dense CRF, on the reference's input (reference) or the image (raw).") var crf: SegmentStage.CRFImage?
    @Option(help: "How the MSC inputs are resized: ratio (PyTorch <= 1.5) or inverse (>= 1.6).")
    var inputResize = SegmentStage.Settings(weights: "").inputResize
    @Flag(help: "Do not write the overlay pictures.") var noOverlays = false

    func run() throws {
        var settings = SegmentStage.Settings(weights: weights)
        (settings.list, settings.widthDivisor, settings.crf) = (stage.data.list ?? settings.list, widthDivisor, crf)
        (settings.inputResize, settings.overlays) = (inputResize, !noOverlays)
        Job.start(compute).run(SegmentStage.self, settings, stage) {
            $0.described(as: "segmented") + "; labels in \(WorkLayout(stage.work).segmentation(crf: false).labels.path)"
        }
    }
}

extension PairGeometry.Coverage: ExpressibleByArgument {}
extension SegmentStage.CRFImage: ExpressibleByArgument {}
extension BilinearResize.Rule: ExpressibleByArgument {}
