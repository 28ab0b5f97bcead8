import ArgumentParser
import Data
import Formats
import Foundation
import Pipeline

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole method on a synthetic dataset, no download needed.",
        discussion: """
            Writes a small VOC-layout dataset into WORK/voc (JPEG images, palette masks, XML \
            annotations, lists): four classes (aeroplane, car, cat, person), each in two visually \
            distinct sub-types (shape, texture, colour), on varied backgrounds, sometimes two objects \
            per image. Then runs `sccam pipeline` on it with a 1/16-width ResNet-38 and 96-pixel \
            images (the classifiers train on 48-pixel crops): the baseline classifier from scratch (40 epochs, lr 0.1, momentum 0.9), three \
            rounds of sub-category discovery with k = 2 (20 epochs each, lr 0.05), CAMs of every \
            round scored against the masks, then the pixel-level stages: affinity labels from \
            the baseline's CAMs (psa's choice; CRF exponents 2 and 4), AffinityNet (from the baseline's \
            backbone, 30 epochs on whole 96-pixel images, lr 0.01), the random walk over every pair of the feature grid (alpha 2, beta 16) \
            and the pseudo-labels' mIoU; then DeepLab-v2 (ResNet-101 at the same width, from scratch, 300 \
            iterations of 2 x 5 whole images at lr 0.001) trained on the pseudo-labels and scored on \
            the validation images, with and without the CRF (on the image itself). About 2.5 to 8 minutes on 2 cores, depending on the CPU. Each round starts from the baseline's \
            backbone (the demo's stand-in for the ImageNet weights the reference starts every round \
            from). Rerunning the command skips what is done; the method flags below override the demo's \
            settings.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var convolution: ConvolutionOptions
    @OptionGroup var exchange: ExchangeOptions
    @OptionGroup var method: MethodOptions

    @Option(help: "Work folder; the dataset goes into WORK/voc.")
    var work: String = "sccam-demo"

    @Option(help: "Images to synthesise (about 80% train, 20% val).")
    var images: Int = 200

    @Option(help: "Side of the square images, in pixels (large enough for AffinityNet's radius-5 pairs on the stride-8 grid).")
    var imageSize: Int = 96

    @Option(help: "Network width divisor (16: about 0.4M parameters).")
    var widthDivisor: Int = 16

    @Option(help: "Seed of the synthetic dataset.")
    var dataSeed: UInt64 = 1

    func validate() throws {
        guard images >= 8 else { throw ValidationError("--images must be at least 8") }
        guard imageSize >= 16 else { throw ValidationError("--image-size must be at least 16") }
        try method.validate()
    }

    /// The demo's defaults: the reference's method, scaled to a few minutes on two cores.
    func settings() throws -> SCCAMPipeline.Settings {
        var settings = SCCAMPipeline.Settings(vocRoot: "\(work)/voc")
        settings.widthDivisor = widthDivisor
        settings.k = 2
        settings.batch = 8
        // From scratch, without ImageNet features to fine-tune, the network needs
        // momentum and more epochs than the reference's fine-tuning schedule.
        settings.momentum = 0.9
        settings.baselineEpochs = 40
        settings.baselineLearningRate = 0.1
        // The classifier sees crops of half the image side, as the reference's 224 crops of
        // ~500-pixel images resized to a long side of 256...512.
        let classifierCrop = max(16, imageSize / 2 / 8 * 8)
        settings.baselineCrop = classifierCrop
        settings.epochs = 20
        settings.learningRate = 0.05
        settings.crop = classifierCrop
        settings.longSide = [classifierCrop, imageSize]
        // AffinityNet on whole images, from the baseline's backbone (no ImageNet here),
        // with the classifier's momentum.
        var refine = SCCAMPipeline.RefineSettings()
        refine.start = .baseline
        refine.crop = imageSize / 8 * 8
        refine.momentum = 0.9
        // psa's lr 0.1 (1.0 on the new layers) assumes its near-zero effective momentum: with
        // 0.9 the affinities collapse to 0 within 50 steps (every loss at -log 1e-5), so a tenth.
        refine.learningRate = 0.01
        // From a from-scratch backbone AffinityNet needs longer than psa's 8 epochs.
        refine.epochs = 30
        // psa's choice of CAMs: the baseline's. The demo's later rounds localise worse (their
        // walk with perfect affinities tops out at 0.54 mIoU, round 0's at 0.76).
        refine.camsRound = 0
        // The demo's CAMs keep a floor on the background (median 0.13, a tenth above 0.49),
        // where a VOC-trained ResNet-38's are near 0: with psa's exponents 4 / 32 the CRF
        // finds almost no confident background, so AffinityNet sees few background and
        // boundary pairs. With 2 / 4 the labels cover 86% of the background and 90% of the
        // objects, with 2% of the object pixels called background.
        refine.lowAlpha = 2
        refine.highAlpha = 4
        // A 96-pixel image has a 12 x 12 grid, on which psa's pairs start from only 32 cells
        // (rows 0-7, columns 4-7): the border cells reach each other only through the middle,
        // and even perfect affinities walk the baseline's CAMs to just 0.58 mIoU. Every pair of
        // the grid (the same network and affinities) lifts that ceiling to 0.69.
        refine.walk.pairs = .wholeGrid
        // Measured on the demo: with every pair, a background exponent of 2 keeps the most
        // foreground and an affinity power of 16 sharpens the learnt affinities best.
        refine.walk.alpha = 2
        refine.walk.beta = 16
        settings.refine = refine
        // DeepLab-v2 at the demo's width, from scratch (no COCO weights here), on the
        // pseudo-labels at the whole-image crop: 300 iterations instead of 20,000, and an lr
        // of 0.001 instead of 2.5e-4, which suits fine-tuning, not a fresh network. At 0.003 it
        // sometimes settles on calling everything background (val mIoU 0.15 on one run where
        // 0.001 gives 0.62; better at 0.001 on each of three sets of pseudo-labels tried).
        var segmentation = SCCAMPipeline.SegmentationSettings()
        segmentation.widthDivisor = widthDivisor
        segmentation.iterations = 300
        segmentation.learningRate = 0.001
        segmentation.crop = imageSize
        segmentation.crf = "raw"
        settings.segmentation = segmentation
        settings.roundStart = .baseline
        settings.evaluateAllRounds = true
        settings.checkpointEvery = 1000
        try method.apply(to: &settings)
        settings.convolutionPrecision = convolution.recordedPrecision
        settings.gradientExchange = exchange.recordedWireFormat
        if method.usedEpochs == nil { settings.usedEpochs = Array(repeating: settings.epochs - 1, count: settings.rounds) }
        return settings
    }

    func run() throws {
        let job = Job.start(runtime)
        convolution.apply()
        job.run {
            try job.prepareWork(work)
            let settings = try settings()
            if job.isRoot { try synthesize(root: settings.vocRoot, log: job.log) }
            try job.communicator.barrier()
            var runtime = method.runtime(defaultLogEvery: 50)
            runtime.exchange = exchange.settings
            try PipelineReport.run(settings: settings, work: work, runtime: runtime, job: job)
        }
    }

    /// Writes the dataset once; a rerun with other data flags is refused rather than mixing two datasets.
    func synthesize(root: String, log: (String) -> Void) throws {
        let stamp = "\(root)/demo-data.txt"
        let description = "images \(images) size \(imageSize) seed \(dataSeed)\n"
        if let existing = try? String(contentsOfFile: stamp, encoding: .utf8) {
            guard existing == description else {
                throw DataError("\(root) holds a demo dataset made with other flags (\(existing.trimmingCharacters(in: .whitespacesAndNewlines))); use another --work")
            }
            log("demo dataset: \(root) (\(description.trimmingCharacters(in: .whitespacesAndNewlines)))")
            return
        }
        let start = Date()
        let dataset = try SyntheticVOC.make(at: root, count: images, width: imageSize, height: imageSize, seed: dataSeed)
        try AtomicFile.write(description, to: stamp)
        let train = dataset.images.filter { !$0.inVal }
        let perClass = SyntheticVOC.catalogue.keys.sorted().map { c in "\(VOCClasses.names[c]) \(train.filter { $0.classes.contains(c) }.count)" }
        log(String(format: "demo dataset: %d images (%d train) of %dx%d in %@ in %.1f s; train images per class: %@", images, train.count,
                   imageSize, imageSize, root, Date().timeIntervalSince(start), perClass.joined(separator: ", ")))
    }
}
