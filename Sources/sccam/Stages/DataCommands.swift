import ArgumentParser
import Pipeline

struct CheckData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-data",
        abstract: "Check a PASCAL VOC 2012 folder before a long job.",
        discussion: """
            Reads the image list, checks that every image exists, builds the image-level labels (from \
            Annotations/, else from the masks) and prints how many images have 1, 2, ... classes. With --decode \
            every JPEG is decoded, with --masks every mask is checked against its image's size. Under mpirun the \
            ranks split the list. Default list: \(DataCheckStage.Settings().list).
            """)

    @OptionGroup var threads: ThreadOptions
    @OptionGroup var data: DataOptions
    @Option(help: "Write the image-level labels to this file (id, classes, source).") var labels: String?
    @Flag(help: "Decode every image.") var decode = false
    @Flag(help: "Check every ground-truth mask against its image's size (implies decoding).") var masks = false

    func run() throws {
        var settings = DataCheckStage.Settings()
        (settings.list, settings.labelCache, settings.decode, settings.checkMasks) = (data.list ?? settings.list, labels, decode, masks)
        var runtime = StageRuntime()
        runtime.skipUnreadable = data.skipUnreadable
        let job = Job.start(threads)
        job.run { job.log("\(try DataCheckStage.run(settings, in: try job.context(work: nil, dataset: data.source, runtime: runtime)))") }
    }
}

struct Cluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Discover sub-categories: per-class k-means over image features.",
        discussion: """
            For each of the 20 classes, k-means (k-means++ seeding, Lloyd, restarts keeping the lowest inertia, \
            as scikit-learn runs it for the reference) over the features of the images that have the class. Each \
            image gets one sub-category per class it has. Rank 0 writes R{round}_subcategories.tsv (id, classes, \
            sub-categories), R{round}_subcategories.npy (int32 [N, 20k] multi-hot, rows in the tsv's order: by \
            smallest class, then list position, as the reference orders them) and R{round}_report.json. A class \
            with fewer images than k gives each image its own sub-category, with a warning.
            """)

    @OptionGroup var threads: ThreadOptions
    @Option(help: "The round these labels are for (features come from round - 1).") var round = ClusterStage.Settings().round
    @Option(help: "Sub-categories per class.") var k = ClusterStage.Settings().k
    @Option(help: "k-means restarts; the lowest inertia wins.") var nInit = ClusterStage.Settings().restarts
    @Option(help: "Seed of the k-means++ draws, as scikit-learn's random_state (0 ... 4294967295); the reference uses 0.")
    var seed = ClusterStage.Settings().seed
    @Option(help: "How ranks share the work: points (each class split over all ranks) or classes (whole classes per rank).")
    var strategy = ClusterStage.Settings().strategy
    @Option(help: "Work folder: reads features/R{round-1}_features.npy, _images.txt and _labels.npy (written by extract), writes labels/.")
    var work: String?
    @Option(help: "Feature matrix (float32 [N, D] .npy), instead of the work folder's.") var features: String?
    @Option(help: "Image ids, one per line, in the feature rows' order.") var images: String?
    @Option(help: "Image-level labels: [N, 20] multi-hot .npy (float or int).") var labels: String?
    @Option(help: "Output folder (default: WORK/labels).") var out: String?

    func validate() throws {
        guard work != nil || (features != nil && images != nil && labels != nil && out != nil) else {
            throw ValidationError("give --work DIR, or all of --features, --images, --labels and --out")
        }
    }

    func run() throws {
        var settings = ClusterStage.Settings(round: round)
        (settings.k, settings.restarts, settings.seed, settings.strategy, settings.output) = (k, nInit, seed, strategy, out)
        let files = WorkLayout(work ?? ".").features(round: round - 1)
        if features != nil || images != nil || labels != nil {
            settings.inputs = SubcategoryClustering.Inputs(features: features ?? files.features, images: images ?? files.images,
                                                           labels: labels ?? files.labels)
        }
        let job = Job.start(threads)
        job.run { job.log("\(try ClusterStage.run(settings, in: try job.context(work: work)))") }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score predicted masks against ground truth: per-class IoU and mIoU.",
        discussion: """
            The reference's metric: one confusion matrix over all pixels of all images (ground-truth 255 \
            ignored), IoU per class, mIoU over the classes present in the ground truth. Palette PNGs are read as \
            their indices and grey PNGs as raw values, never as luminance. By default every prediction that has \
            a ground-truth file is scored.
            """)

    @OptionGroup var threads: ThreadOptions
    @Option(help: "Folder of predicted masks ({id}.png).") var pred: String?
    @Option(help: "Folder of CAMs written by `sccam infer` (cams/): sweep the background threshold over them.") var cams: String?
    @Option(help: "Thresholds of the sweep, as start:stop:step (inclusive; default 0.05:0.60:0.05).") var thresholds: ThresholdRange?
    @Option(help: "Folder of ground-truth masks (SegmentationClass or SegmentationClassAug).") var gt: String
    @Option(help: "Score only the ids of this list (each must have both files).") var list: String?
    @Option(help: "Also write miou, class_iou, pixel_accuracy and the confusion matrix as JSON.") var json: String?
    @Option(help: "Classes of the masks, the background included (VOC: 21, COCO: 81).") var classes: Int?

    func validate() throws {
        guard pred != nil || cams != nil else { throw ValidationError("give --pred (masks), --cams (a threshold sweep), or both") }
    }

    func run() throws {
        var settings = EvaluateStage.Settings(groundTruth: gt)
        (settings.predictions, settings.cams, settings.list, settings.matrixReport, settings.classes) = (pred, cams, list, json, classes)
        settings.thresholds = thresholds?.values ?? settings.thresholds
        let job = Job.start(threads)
        job.run {
            let result = try EvaluateStage.run(settings, in: try job.context(work: nil))
            for entry in result.sweep ?? [] { job.log(String(format: "threshold %.3f: mIoU %.4f", entry[0], entry[1])) }
            if result.sweep != nil {
                job.log(String(format: "best background threshold %.3f: mIoU %.4f", result.bestThreshold ?? .nan, result.bestMiou ?? .nan))
            }
            if let matrix = result.matrix { job.log("\(result.images) image(s) scored\n\(matrix.table())") }
        }
    }

    /// start:stop:step, inclusive.
    struct ThresholdRange: ExpressibleByArgument {
        let values: [Float]
        init?(argument: String) {
            let parts = argument.split(separator: ":").compactMap { Double($0) }
            guard parts.count == 3, parts[2] > 0, parts[1] >= parts[0] else { return nil }
            values = Array(stride(from: parts[0], through: parts[1] + parts[2] / 2, by: parts[2])).map { Float($0) }
        }
    }
}

struct CRF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crf",
        abstract: "Run the dense CRF on one image and its probabilities.",
        discussion: """
            Mean-field inference in a fully connected CRF exactly as pydensecrf (Krähenbühl's densecrf) computes \
            it: unary -log(clip(p, 1e-5, 1)), a Gaussian and a bilateral kernel through the permutohedral \
            lattice, Potts compatibility. The image's channels are used in RGB order, as psa loads images. The \
            probabilities need not sum to 1 per pixel (psa's affinity-label stacks do not).
            """)

    @OptionGroup var threads: ThreadOptions
    @Option(help: "The image (JPEG or PNG).") var image: String
    @Option(help: "Probabilities: .npy float32 [L, H, W] in [0, 1], for the image's H x W.") var probs: String
    @Option(help: "Where to write the CRF's output, .npy float32 [L, H, W] (atomically).") var out: String
    @OptionGroup var crf: CRFOptions
    @Option(help: "Also write the argmax over labels as a VOC-palette PNG (label i in colour i).") var labelsOut: String?

    func run() throws {
        var settings = CRFStage.Settings(image: image, probabilities: probs, output: out)
        (settings.labelsOutput, settings.parameters, settings.iterations) = (labelsOut, try crf.parameters(), crf.iterations)
        let job = Job.start(threads)
        job.run { job.log("\(try CRFStage.run(settings, in: try job.context(work: nil)))") }
    }
}

extension SubcategoryClustering.Strategy: ExpressibleByArgument {}
