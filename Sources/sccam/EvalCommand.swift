import ArgumentParser
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
    var pred: String

    @Option(help: "Folder of ground-truth masks (SegmentationClass or SegmentationClassAug).")
    var gt: String

    @Option(help: "Score only the ids of this list (each must have both files).")
    var list: String?

    @Option(help: "Also write miou, class_iou, pixel_accuracy and the confusion matrix as JSON.")
    var json: String?

    func run() throws {
        let job = Job.start(runtime)
        job.run {
            let (matrix, images) = try Evaluation.run(predictions: pred, groundTruth: gt, list: list, communicator: job.communicator)
            job.log("\(images) image(s) scored")
            job.log(matrix.table())
            if let json, job.isRoot {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try AtomicFileWriter.write(try encoder.encode(matrix.jsonReport), to: json)
            }
        }
    }
}
