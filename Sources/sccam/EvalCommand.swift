import ArgumentParser
import Formats
import Foundation
import Pipeline

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score predicted masks against ground truth: per-class IoU and mIoU.",
        discussion: """
            The reference's metric: one confusion matrix over all pixels of all images (ground-truth \
            255 ignored), IoU per class, mIoU over the classes present in the ground truth. Palette \
            PNGs are read as their indices and grey PNGs as raw values, never as luminance. By \
            default every prediction that has a ground-truth file is scored.
            """)

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Folder of predicted masks ({id}.png).")
    var pred: String?

    @Option(help: "Folder of CAMs written by `sccam infer` (cams/): sweep the background threshold over them.")
    var cams: String?

    @Option(help: "Thresholds of the sweep, as start:stop:step (inclusive).")
    var thresholds: String = "0.05:0.60:0.05"

    @Option(help: "Folder of ground-truth masks (SegmentationClass or SegmentationClassAug).")
    var gt: String

    @Option(help: "Score only the ids of this list (each must have both files).")
    var list: String?

    @Option(help: "Also write miou, class_iou, pixel_accuracy and the confusion matrix as JSON.")
    var json: String?

    func validate() throws {
        guard pred != nil || cams != nil else { throw ValidationError("give --pred (masks), --cams (a threshold sweep), or both") }
        guard thresholdList.count >= 1 else { throw ValidationError("--thresholds must be start:stop:step with step > 0") }
    }

    var thresholdList: [Float] {
        let parts = thresholds.split(separator: ":").compactMap { Double($0) }
        guard parts.count == 3, parts[2] > 0, parts[1] >= parts[0] else { return [] }
        return Array(stride(from: parts[0], through: parts[1] + parts[2] / 2, by: parts[2])).map { Float($0) }
    }

    func run() throws {
        let job = Job.start(runtime)
        job.run {
            if let cams {
                let matrices = try Evaluation.sweep(cams: cams, groundTruth: gt, thresholds: thresholdList, list: list,
                                                    communicator: job.communicator)
                for (threshold, matrix) in zip(thresholdList, matrices) {
                    job.log(String(format: "threshold %.3f: mIoU %.4f", threshold, matrix.meanIoU ?? .nan))
                }
                let best = Evaluation.best(thresholds: thresholdList, matrices: matrices)
                job.log(String(format: "best background threshold %.3f: mIoU %.4f", best.threshold, best.meanIoU))
            }
            guard let pred else { return }
            let (matrix, images) = try Evaluation.run(predictions: pred, groundTruth: gt, list: list, communicator: job.communicator)
            job.log("\(images) image(s) scored")
            job.log(matrix.table())
            if let json, job.isRoot {
                try AtomicFile.writeJSON(matrix.jsonReport, to: json)
            }
        }
    }
}
