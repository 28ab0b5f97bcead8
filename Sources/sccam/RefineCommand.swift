import ArgumentParser
import Data
import Foundation
import Network
import Pipeline

struct RefineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refine",
        abstract: "Pixel-level pseudo-labels: AffinityNet's random walk of saved CAMs (psa's infer_aff.py).",
        discussion: """
            For every image of the list, at its native size: the normalised image, zero-padded to \
            multiples of 8, through AffinityNet; its radius-5 pair affinities, raised to --beta and \
            column-normalised into a transition matrix T; the CAM scores ((1 - max CAM)^alpha for \
            the background, then the 20 classes), 8 x 8 mean-pooled, multiplied by T^(2^logt); \
            upsampled bilinearly and the argmax taken (spec 9.4). T is never formed densely: \
            2^logt sparse products give psa's dense squaring's result at a tiny fraction of the work. \
            Writes WORK/refine/{id}.png (grey class ids, 0 = background, as psa writes them), \
            WORK/refine_color/{id}.png (VOC palette) and WORK/refine_overlays/{id}.png. Score them with \
            `sccam eval --pred WORK/refine --gt ...`. Ranks split the list; finished images are skipped \
            on a rerun.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var convolution: ConvolutionOptions

    @OptionGroup var voc: VOCRootOption

    @Option(help: "train, val, train_aug, or the path of a list file.")
    var list: String = "train"

    @Option(help: "AffinityNet weights: sccam train-aff's safetensors or psa's resnet38_aff state dict (.pth).")
    var affWeights: String

    @Option(help: "Folder of sccam infer's CAMs ({id}.npy and {id}.classes.npy), e.g. WORK/cams.")
    var cams: String

    @Option(help: "Work folder; the labels go to WORK/refine/.")
    var work: String

    @Option(help: "Exponent of the background score (1 - max CAM)^alpha (psa: 16).")
    var alpha: Double = 16

    @Option(help: "Power the affinities are raised to (psa: 8).")
    var beta: Double = 8

    @Option(help: "The walk takes 2^logt steps (psa: 8, i.e. 256).")
    var logt: Int = 8

    @Option(help: ArgumentHelp(
        "The pairs whose affinities make T: psa (default) or whole-grid.",
        discussion: """
            psa pairs only the cells whose 34 radius-5 targets all lie inside the grid (rows 0..h-5, \
            columns 4..w-5), as in training, so the four border columns on each side and the four \
            bottom rows reach each other only through the inner cells. whole-grid pairs every two \
            cells closer than the radius: the same affinities, also along the borders. It matters \
            on small grids (a 96-pixel image has 32 psa from-cells of 144).
            """))
    var pairs: PairGeometry.Coverage = .psa

    @Flag(help: "Do not write the overlay pictures.")
    var noOverlays = false

    @Flag(help: "Skip images whose image or CAM files are unreadable (counted and reported) instead of stopping.")
    var skipUnreadable = false

    func validate() throws {
        guard alpha > 0, beta > 0 else { throw ValidationError("--alpha and --beta must be positive") }
        guard (0...12).contains(logt) else { throw ValidationError("--logt must be 0 to 12 (the walk takes 2^logt steps)") }
    }

    func run() throws {
        let job = Job.start(runtime)
        convolution.apply()
        job.run {
            try job.prepareWork(work)
            let dataset = try VOCDataset(root: voc.root)
            let imageList = try dataset.list(list)
            try dataset.validate(imageList)
            let network = try AffinityNetwork.fromWeights(affWeights, note: job.warn)
            job.log("refine: \(imageList.ids.count) images of \(imageList.source), AffinityNet from \(affWeights) (width 1/\(network.widthDivisor)), alpha \(alpha), beta \(beta), \(1 << logt) steps, \(pairs.rawValue) pairs, on \(job.communicator.size) rank(s)")
            let summary = try RefineStage.run(
                dataset: dataset, list: imageList, network: network,
                options: RefineStage.Options(cams: cams, work: work, walk: RandomWalk.Parameters(alpha: alpha, beta: beta, logT: logt, pairs: pairs),
                                             overlays: !noOverlays, skipUnreadable: skipUnreadable),
                communicator: job.communicator, log: job.log)
            job.log(String(format: "refined %d image(s), %d already done, in %.1f s; labels in %@/refine",
                           summary.computed, summary.alreadyDone, summary.seconds, work))
            if !summary.failures.isEmpty {
                job.log("\(summary.failures.count) image(s) were unreadable and skipped:\n  " + summary.failures.joined(separator: "\n  "))
            }
        }
    }
}

extension PairGeometry.Coverage: ExpressibleByArgument {}
