import ArgumentParser
import Data
import Foundation
import Kernels
import Network
import Pipeline

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Segment images with a trained DeepLab-v2: multi-scale inference, optional CRF (deeplab-pytorch's main.py test and crf).",
        discussion: """
            Per image at its native size (no padding, batch 1): the BGR image less the mean through \
            the MSC network (scales 1, 0.5, 0.75, pixel-wise max of the logits), the logits upsampled \
            bilinearly to the image, softmax, argmax. Writes WORK/segment/{id}.png (grey class ids), \
            WORK/segment_color/ (VOC palette) and WORK/segment_overlays/. With --crf, the dense CRF \
            with the reference's parameters (10 iterations; Gaussian 1, 3; bilateral 67, 3, 4) on the \
            probabilities, into WORK/segment_crf/: --crf reference feeds the CRF what main.py crf \
            feeds it (the mean-subtracted BGR image cast to uint8 with wrap-around: the reference's \
            scores), --crf raw the image itself (demo.py's). Ranks split the list; finished images \
            are skipped on a rerun. Score with `sccam eval --pred WORK/segment --gt VOC/SegmentationClass`.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var convolution: ConvolutionOptions

    @OptionGroup var voc: VOCRootOption

    @Option(help: "train, val, train_aug, or the path of a list file.")
    var list: String = "val"

    @Option(help: "DeepLab weights: sccam train-seg's safetensors or deeplab-pytorch's checkpoint (.pth).")
    var weights: String

    @Option(help: "Channel divisor of the network the weights belong to.")
    var widthDivisor: Int = 1

    @Option(help: "Work folder; the labels go to WORK/segment/.")
    var work: String

    @Option(help: "Also run the dense CRF: reference (main.py's input, for score parity) or raw (the image).")
    var crf: String?

    @Option(help: "How the MSC inputs are resized: ratio (PyTorch <= 1.5) or inverse (>= 1.6).")
    var inputResize: String = "ratio"

    @Flag(help: "Do not write the overlay pictures.")
    var noOverlays = false

    @Flag(help: "Skip unreadable images (reported at the end) instead of stopping.")
    var skipUnreadable = false

    func validate() throws {
        if let crf, SegmentStage.CRFImage(rawValue: crf) == nil { throw ValidationError("--crf takes reference or raw") }
        guard BilinearResize.Rule(rawValue: inputResize) != nil else { throw ValidationError("--input-resize must be ratio or inverse") }
        guard [1, 2, 4, 8, 16, 32].contains(widthDivisor) else { throw ValidationError("--width-divisor must be a power of two up to 32") }
    }

    func run() throws {
        let job = Job.start(runtime)
        convolution.apply()
        job.run {
            try job.prepareWork(work)
            let dataset = try VOCDataset(root: voc.root)
            let imageList = try dataset.list(list)
            try dataset.validate(imageList)
            let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: widthDivisor,
                                                                        inputResize: BilinearResize.Rule(rawValue: inputResize)!))
            let (source, report) = try network.loadWeights(weights)
            guard report.keptAtInitialization.isEmpty else {
                throw DataError("\(weights) (\(source.rawValue)) has no trained ASPP: it is an initialisation, not a segmentation model; train it with sccam train-seg first")
            }
            var options = SegmentStage.Options(work: work, crf: crf.flatMap(SegmentStage.CRFImage.init(rawValue:)))
            options.overlays = !noOverlays
            options.skipUnreadable = skipUnreadable
            job.log("segment: \(imageList.ids.count) images of \(imageList.source) with \(weights) (width 1/\(widthDivisor))\(crf.map { ", CRF on the \($0) image" } ?? "") on \(job.communicator.size) rank(s)")
            let summary = try SegmentStage.run(dataset: dataset, list: imageList, network: network, options: options,
                                               communicator: job.communicator, log: job.log)
            job.log(String(format: "segmented %d image(s), %d already done, in %.1f s; labels in %@/segment", summary.computed,
                           summary.alreadyDone, summary.seconds, work))
            if !summary.failures.isEmpty {
                job.log("\(summary.failures.count) image(s) were unreadable and skipped:\n  " + summary.failures.joined(separator: "\n  "))
            }
        }
    }
}
