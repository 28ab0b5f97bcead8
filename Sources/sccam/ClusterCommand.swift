import ArgumentParser
import Foundation
import Pipeline

struct Cluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Discover sub-categories: per-class k-means over image features.",
        discussion: """
            For each of the 20 classes, k-means (k-means++ seeding, Lloyd, restarts keeping the \
            lowest inertia, as scikit-learn runs it for the reference) over the features of the \
            images that have the class. Each image gets one sub-category per class it has. Rank 0 \
            writes R{round}_subcategories.tsv (id, classes, sub-categories), R{round}_subcategories.npy \
            (int32 [N, 20k] multi-hot, rows in the tsv's order: by smallest class, then list \
            position, as the reference orders them) and R{round}_report.json. A class with fewer \
            images than k gives each image its own sub-category, with a warning.
            """)

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "The round these labels are for (features come from round - 1).")
    var round: Int = 1

    @Option(help: "Sub-categories per class.")
    var k: Int = 10

    @Option(help: "k-means restarts; the lowest inertia wins.")
    var nInit: Int = 10

    @Option(help: "Seed of the k-means++ draws, as scikit-learn's random_state (0 ... 4294967295); the reference uses 0.")
    var seed: UInt64 = 0

    @Option(help: "How ranks share the work: points (each class split over all ranks) or classes (whole classes per rank).")
    var strategy: String = "points"

    @Option(help: "Work folder: reads features/R{round-1}_features.npy, _images.txt and _labels.npy (written by extract), writes labels/.")
    var work: String?

    @Option(help: "Feature matrix (float32 [N, D] .npy), instead of the work folder's.")
    var features: String?

    @Option(help: "Image ids, one per line, in the feature rows' order.")
    var images: String?

    @Option(help: "Image-level labels: [N, 20] multi-hot .npy (float or int).")
    var labels: String?

    @Option(help: "Output folder (default: WORK/labels).")
    var out: String?

    func validate() throws {
        guard k >= 1, nInit >= 1, round >= 1 else { throw ValidationError("--k, --n-init and --round must be at least 1") }
        guard SubcategoryClustering.Strategy(rawValue: strategy) != nil else { throw ValidationError("--strategy must be points or classes") }
        guard work != nil || (features != nil && images != nil && labels != nil && out != nil) else {
            throw ValidationError("give --work DIR, or all of --features, --images, --labels and --out")
        }
    }

    func run() throws {
        let job = Job.start(runtime)
        job.run {
            if let work { try job.prepareWork(work) }
            let previous = round - 1
            let inputs = SubcategoryClustering.Inputs(
                features: features ?? "\(work!)/features/R\(previous)_features.npy",
                images: images ?? "\(work!)/features/R\(previous)_images.txt",
                labels: labels ?? "\(work!)/features/R\(previous)_labels.npy")
            let report = try SubcategoryClustering.run(
                inputs: inputs, round: round, k: k, restarts: nInit, seed: seed,
                strategy: SubcategoryClustering.Strategy(rawValue: strategy)!, output: out ?? "\(work!)/labels",
                communicator: job.communicator, log: job.log,
                warn: job.warn)
            job.log(String(format: "clustered %d images into %d sub-categories per class in %.2f s (%@ strategy, %d rank(s))",
                           report.images, k, report.seconds, strategy, job.communicator.size))
        }
    }
}
