import ArgumentParser
import Data
import Foundation
import Network
import Pipeline

struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Multi-scale + flip class activation maps, masks and overlays.",
        discussion: """
            For each image of the list: CAMs at scales 1, 0.5, 1.5, 2 and their flips, resized to the \
            image (bilinear, half-pixel), masked by the image labels, summed and normalised per class \
            as the reference does (spec 6.2). Writes into WORK: cams/{id}.npy (float32 [C, H, W] for \
            the C present classes, real scores) with cams/{id}.classes.npy (int32 [C], class indices \
            0-19), masks/{id}.png (VOC palette; background below the threshold), masks_sub/{id}.png \
            (the sub-category path, rounds >= 1) and overlays/{id}.png (the image, then a heat map per \
            present class). With --crf ALPHA also masks_crf/{id}.png from the dense CRF; score them \
            with sccam eval --pred WORK/masks_crf. Finished images are skipped, so a killed run resumes.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var convolution: ConvolutionOptions

    @OptionGroup var voc: VOCRootOption

    @Option(help: "train, val, train_aug, or the path of a list file.")
    var list: String = "train"

    @Option(help: "The classifier (safetensors, PyTorch .pth; recognised by content). It must have its heads.")
    var weights: String

    @Option(help: "Work folder for the outputs.")
    var work: String

    @Option(help: "Background threshold (SC-CAM 0.15; psa used 0.2).")
    var threshold: Float = 0.15

    @Option(help: "Comma-separated scales; each is run plain and flipped.")
    var scales: String = "1,0.5,1.5,2"

    @Flag(help: "Do not write the overlay pictures.")
    var noOverlays = false

    @Option(help: ArgumentHelp("Also write masks_crf/{id}.png: the dense CRF (psa's parameters, 10 iterations) of [(1 - max CAM)^ALPHA, CAMs], SC-CAM's optional dCRF post-processing (psa uses 4 and 32).", valueName: "alpha"))
    var crf: Float?

    @Flag(help: "Skip unreadable images (reported at the end) instead of stopping.")
    var skipUnreadable = false

    func validate() throws {
        if let crf, !(crf > 0) { throw ValidationError("--crf takes a positive alpha (psa uses 4 and 32)") }
    }

    func run() throws {
        let job = Job.start(runtime)
        convolution.apply()
        job.run {
            try job.prepareWork(work)
            guard let scaleList = ListArguments.scales(scales) else { throw ValidationError("--scales must list positive numbers") }
            let network = try SCCAMNetwork.fromWeights(weights, note: job.warn)
            let dataset = try VOCDataset(root: voc.root)
            let imageList = try dataset.list(list)
            try dataset.validate(imageList)
            let labels = try ImageLabels.load(dataset: dataset, ids: imageList.ids, cache: job.isRoot ? "\(work)/image_labels.tsv" : nil,
                                              warn: job.warn)
            job.log("infer: \(imageList.ids.count) images, \(scaleList.count * 2) views each, on \(job.communicator.size) rank(s)")
            let summary = try Inference.run(
                network: network, dataset: dataset, list: imageList, labels: labels,
                options: Inference.Options(work: work, threshold: threshold, scales: scaleList, overlays: !noOverlays,
                                           skipUnreadable: skipUnreadable, crfAlpha: crf),
                communicator: job.communicator, log: job.log)
            job.log(String(format: "computed %d image(s), %d already done, in %.1f s", summary.computed, summary.alreadyDone, summary.seconds))
            if !summary.failures.isEmpty {
                job.log("\(summary.failures.count) image(s) failed and were skipped:\n  " + summary.failures.joined(separator: "\n  "))
            }
        }
    }
}
