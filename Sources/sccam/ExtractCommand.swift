import ArgumentParser
import Data
import Foundation
import Network
import Pipeline

struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extract the pooled feature of every image with a round's classifier.",
        discussion: """
            Runs the classifier in eval mode on each image of the list at its native size (the \
            reference's view for features: scale 1, not flipped) and keeps the global average of \
            conv6. Writes WORK/features/R{round}_features.npy (float32 [N, D], list order), \
            R{round}_images.txt and R{round}_labels.npy (the image-level labels, [N, 20]), which \
            `sccam cluster --round {round + 1} --work WORK` reads. Ranks split the list; each \
            checkpoints its finished part, so --resume continues a killed run.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var convolution: ConvolutionOptions

    @OptionGroup var voc: VOCRootOption

    @Option(help: "train, val, train_aug, or the path of a list file.")
    var list: String = "train_aug"

    @Option(help: "The classifier: safetensors, PyTorch .pth or MXNet .params (recognised by content).")
    var weights: String

    @Option(help: "The round of that classifier (0 = the baseline).")
    var round: Int = 0

    @Option(help: "Work folder.")
    var work: String

    @Flag(help: "Continue a killed extraction, keeping the images each rank had finished.")
    var resume = false

    @Option(help: "Images between a rank's checkpoints.")
    var checkpointEvery: Int = 100

    @Option(help: "Background threads decoding images.")
    var decodeThreads: Int = 1

    @Flag(help: "Skip unreadable images with a warning and a count instead of stopping.")
    var skipUnreadable = false

    @Flag(help: "Accept weights without classification heads (extraction uses only the backbone).")
    var allowMissingHeads = false

    @Option(help: ArgumentHelp("Test hook: exit after this many images.", visibility: .private))
    var debugStopAfter: Int?

    func validate() throws {
        guard round >= 0, checkpointEvery >= 1, decodeThreads >= 1 else {
            throw ValidationError("--round must be 0 or more; --checkpoint-every and --decode-threads at least 1")
        }
    }

    func run() throws {
        let job = Job.start(runtime)
        convolution.apply()
        job.run {
            try job.prepareWork(work)
            let network = try SCCAMNetwork.fromWeights(weights, allowMissingHeads: allowMissingHeads, note: job.warn)
            let configuration = network.configuration
            let dataset = try VOCDataset(root: voc.root)
            let imageList = try dataset.list(list)
            try dataset.validate(imageList)
            let labels = try ImageLabels.load(dataset: dataset, ids: imageList.ids, cache: job.isRoot ? "\(work)/image_labels.tsv" : nil,
                                              warn: job.warn)
            job.log("extract: \(imageList.ids.count) images of \(imageList.source) with \(weights) (width 1/\(configuration.widthDivisor), \(configuration.featureChannels)-d features) on \(job.communicator.size) rank(s)")
            let summary = try FeatureExtraction.run(
                network: network, dataset: dataset, list: imageList, labels: labels,
                options: FeatureExtraction.Options(round: round, work: work, resume: resume, checkpointEvery: checkpointEvery,
                                                   decodeThreads: decodeThreads, skipUnreadable: skipUnreadable, stopAfter: debugStopAfter),
                communicator: job.communicator, log: job.log, warn: job.warn)
            job.log(String(format: "wrote %d features of %d values to %@/features/R%d_features.npy in %.1f s%@",
                           summary.images, summary.dimension, work, round, summary.seconds,
                           summary.skipped.isEmpty ? "" : "; skipped \(summary.skipped.count) unreadable image(s)"))
        }
    }
}
