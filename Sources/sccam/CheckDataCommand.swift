import ArgumentParser
import Foundation
import Pipeline

struct CheckData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-data",
        abstract: "Check a PASCAL VOC 2012 folder before a long job.",
        discussion: """
            Reads the image list, checks that every image exists, builds the image-level labels \
            (from Annotations/, else from the masks) and prints how many images have 1, 2, ... \
            classes. With --decode every JPEG is decoded, with --masks every mask is checked \
            against its image's size. Under mpirun the ranks split the list.
            """)

    @OptionGroup var runtime: RuntimeOptions

    @OptionGroup var voc: VOCRootOption

    @Option(help: "train, val, train_aug, or the path of a list file.")
    var list: String = "train_aug"

    @Option(help: "Write the image-level labels to this file (id, classes, source).")
    var labels: String?

    @Flag(help: "Decode every image.")
    var decode = false

    @Flag(help: "Check every ground-truth mask against its image's size (implies decoding).")
    var masks = false

    @Flag(help: "Skip unreadable images with a warning and a count instead of stopping.")
    var skipUnreadable = false

    func run() throws {
        let job = Job.start(runtime)
        job.run {
            let options = DataCheck.Options(list: list, labelCache: labels, decode: decode, checkMasks: masks,
                                            skipUnreadable: skipUnreadable)
            let report = try DataCheck.run(voc: voc.root, options: options, communicator: job.communicator, log: job.log,
                                           warn: job.warn)
            let histogram = report.imagesWithClassCount.enumerated().dropFirst().filter { $0.element > 0 }
                .map { "\($0.element) with \($0.offset)" }.joined(separator: ", ")
            job.log("images by number of classes: \(histogram)")
            if report.imagesWithClassCount[0] > 0 {
                job.log("warning: \(report.imagesWithClassCount[0]) image(s) have no class at all")
            }
            if decode || masks {
                job.log("decoded \(report.decoded) image(s), checked \(report.masksChecked) mask(s) in \(String(format: "%.1f", report.seconds)) s")
            }
            if !report.skipped.isEmpty {
                job.log("skipped \(report.skipped.count) unreadable image(s): \(report.skipped.prefix(10).joined(separator: ", "))")
            }
        }
    }
}
