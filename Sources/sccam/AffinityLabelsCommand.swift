import ArgumentParser
import Data
import Foundation
import Pipeline

struct AffinityLabelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "affinity-labels",
        abstract: "CRF score stacks from saved CAMs: what AffinityNet's training labels are made of.",
        discussion: """
            For every image of the list, from its CAMs (sccam infer's cams/{id}.npy and \
            .classes.npy, any round): the stacks [(1 - max CAM)^alpha, CAMs of the present classes] \
            for alpha = --low-alpha and --high-alpha, each through the dense CRF on the original image \
            (10 iterations, psa's parameters), as psa's infer_cls.py makes them (spec 9.2). Writes \
            WORK/affinity/{id}.npy, float32 [2, 1 + C, H, W] (low then high alpha), and \
            WORK/affinity/{id}.classes.npy, int32 [C]. Scores are kept at full resolution, because \
            training crops image and scores together before pooling them 8 x 8: about 3.8 MB per VOC \
            image, some 35 GB for train_aug's 10,582 images. Ranks split the list; finished images are \
            skipped on a rerun.
            """)

    @OptionGroup var runtime: RuntimeOptions

    @OptionGroup var voc: VOCRootOption

    @Option(help: "train, val, train_aug, or the path of a list file.")
    var list: String = "train_aug"

    @Option(help: "Folder of sccam infer's CAMs ({id}.npy and {id}.classes.npy), e.g. WORK/cams.")
    var cams: String

    @Option(help: "Work folder; the stacks go to WORK/affinity/.")
    var work: String

    @Option(help: "Alpha of the low-alpha stack (more background; psa: 4).")
    var lowAlpha: Float = 4

    @Option(help: "Alpha of the high-alpha stack (less background; psa: 32).")
    var highAlpha: Float = 32

    @Flag(help: "Skip images whose image or CAM files are unreadable (counted and reported) instead of stopping.")
    var skipUnreadable = false

    func validate() throws {
        guard lowAlpha > 0, highAlpha > 0 else { throw ValidationError("--low-alpha and --high-alpha must be positive") }
    }

    func run() throws {
        let job = Job.start(runtime)
        job.run {
            try job.prepareWork(work)
            let dataset = try VOCDataset(root: voc.root)
            let imageList = try dataset.list(list)
            try dataset.validate(imageList)
            job.log("affinity-labels: \(imageList.ids.count) images of \(imageList.source), alpha \(lowAlpha) and \(highAlpha), CAMs from \(cams), on \(job.communicator.size) rank(s)")
            let summary = try AffinityScoreStage.run(
                dataset: dataset, list: imageList,
                options: AffinityScoreStage.Options(cams: cams, work: work, lowAlpha: lowAlpha, highAlpha: highAlpha,
                                                    skipUnreadable: skipUnreadable),
                communicator: job.communicator, log: job.log)
            job.log(String(format: "computed %d image(s), %d already done, in %.1f s; wrote %.1f MB to %@/affinity",
                           summary.computed, summary.alreadyDone, summary.seconds, Double(summary.bytesWritten) / 1e6, work))
            if !summary.failures.isEmpty {
                job.log("\(summary.failures.count) image(s) were unreadable and skipped:\n  " + summary.failures.joined(separator: "\n  "))
            }
        }
    }
}
