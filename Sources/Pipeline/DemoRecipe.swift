import Data
import Formats
import Foundation
import Stages
import Workflow

extension SCCAMPipeline.Settings {
    /// The demo's recipe: the reference's method, scaled to a few minutes on two
    /// cores on `sccam demo`'s synthetic images (side `imageSize`), with every
    /// network trained from scratch at `widthDivisor`. Each departure from the
    /// reference says why; the numbers were measured on the demo's data.
    public static func demo(vocRoot: String, imageSize: Int, widthDivisor: Int) -> SCCAMPipeline.Settings {
        var settings = SCCAMPipeline.Settings(vocRoot: vocRoot)
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
        settings.usedEpochs = Array(repeating: settings.epochs - 1, count: settings.rounds)
        return settings
    }
}

/// `sccam demo`'s synthetic dataset: VOC's layout (WORK/voc) or COCO's
/// (WORK/coco, then made ready by prepare-coco), written once; a rerun with
/// other data settings is refused rather than mixing two datasets.
public enum DemoDataset {
    public struct Settings: Codable, Sendable, Equatable {
        public var kind = DatasetKind.voc
        /// Images to synthesise (about 80% train, 20% val).
        public var images = 200
        /// Side of the square images (large enough for AffinityNet's radius-5 pairs on the stride-8 grid).
        public var imageSize = 96
        /// The networks' width divisor (16: about 0.4M parameters for ResNet-38).
        public var widthDivisor = 16
        public var seed: UInt64 = 1

        public init() {}

        public init(kind: DatasetKind, images: Int, imageSize: Int, widthDivisor: Int, seed: UInt64) {
            (self.kind, self.images, self.imageSize, self.widthDivisor, self.seed) = (kind, images, imageSize, widthDivisor, seed)
        }
    }

    public static func root(work: String, kind: DatasetKind = .voc) -> String { WorkLayout(work).demoDataset(kind) }

    /// The pipeline's settings for the demo: the recipe, on this dataset.
    public static func pipelineSettings(_ settings: Settings, work: String) -> SCCAMPipeline.Settings {
        var pipeline = SCCAMPipeline.Settings.demo(vocRoot: root(work: work, kind: .voc), imageSize: settings.imageSize,
                                                   widthDivisor: settings.widthDivisor)
        if settings.kind == .coco {
            // VOC's list names (train_aug, train, val) stand for train2014 and val2014 there.
            (pipeline.vocRoot, pipeline.dataset, pipeline.cocoRoot) = (nil, .coco, root(work: work, kind: .coco))
            // The classifier's loss averages over the dataset's classes: the COCO-layout demo has
            // its 4, where the VOC one has VOC's 20, so each logit's gradient is 5x as large. At the
            // VOC demo's rates the baseline lost one class for good (its CAMs all 0) and every later
            // round fell to 0.14-0.21 mIoU; the rates scale with the class count instead.
            let scale = Float(SyntheticCOCO.categories.count) / Float(VOCClasses.count)
            pipeline.baselineLearningRate *= scale
            pipeline.learningRate *= scale
        }
        return pipeline
    }

    /// Writes the dataset (rank 0) and, for COCO, prepares both splits on every rank.
    public static func prepare(_ settings: Settings, work: String, context: StageContext) throws {
        let root = root(work: work, kind: settings.kind)
        guard settings.images >= 8, settings.imageSize >= 16 else {
            throw DataError("the demo needs at least 8 images of at least 16 pixels (got \(settings.images) of \(settings.imageSize))")
        }
        let stamp = ImageFolder(root).member("demo-data.txt")
        let description = "images \(settings.images) size \(settings.imageSize) seed \(settings.seed)\n"
        var failure = ""
        if context.isRoot {
            do { try write(settings, root: root, stamp: stamp, description: description, log: context.log) } catch { failure = "\(error)" }
        }
        failure = try context.communicator.broadcast(string: failure, root: 0)
        guard failure.isEmpty else { throw DataError(failure) }
        guard settings.kind == .coco else { return }
        for split in SyntheticCOCO.splits {
            var preparation = PrepareCOCOStage.Settings(root: root)
            preparation.split = split
            context.log("\(try PrepareCOCOStage.run(preparation, in: context))")
        }
    }

    static func write(_ settings: Settings, root: String, stamp: String, description: String, log: (String) -> Void) throws {
        if let existing = try? String(contentsOfFile: stamp, encoding: .utf8) {
            guard existing == description else {
                throw DataError("\(root) holds a demo dataset made with other flags (\(existing.trimmingCharacters(in: .whitespacesAndNewlines))); use another --work")
            }
            log("demo dataset: \(root) (\(description.trimmingCharacters(in: .whitespacesAndNewlines)))")
            return
        }
        let start = Date()
        let size = settings.imageSize
        switch settings.kind {
        case .voc:
            let dataset = try SyntheticVOC.make(at: root, count: settings.images, width: size, height: size, seed: settings.seed)
            let train = dataset.images.filter { !$0.inVal }
            let perClass = SyntheticVOC.catalogue.keys.sorted().map { c in "\(VOCClasses.names[c]) \(train.filter { $0.classes.contains(c) }.count)" }
            log(String(format: "demo dataset: %d images (%d train) of %dx%d in %@ in %.1f s; train images per class: %@", settings.images,
                       train.count, size, size, root, Date().timeIntervalSince(start), perClass.joined(separator: ", ")))
        case .coco:
            let made = try SyntheticCOCO.make(at: root, count: settings.images, width: size, height: size, seed: settings.seed)
            log(String(format: "demo dataset (COCO layout): %d train2014 and %d val2014 images of %dx%d in %@ in %.1f s; %d annotations, %d crowd region(s), %d image(s) without any",
                       made.images["train2014"] ?? 0, made.images["val2014"] ?? 0, size, size, root, Date().timeIntervalSince(start),
                       made.annotations, made.crowds, made.empty))
        }
        try AtomicFile.write(description, to: stamp)
    }
}
