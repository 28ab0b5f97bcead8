import Data
import Distributed
import Formats
import Foundation
import Workflow

/// Checks a VOC root before a long job: the list, the image labels, and
/// optionally that every image decodes and every mask fits its image. Ranks
/// split the list; rank 0 reports.
public enum DataCheckStage: Stage {
    public static let name = "check-data"

    public struct Settings: Codable, Sendable, Equatable {
        public var list = "train_aug"
        /// Write the image-level labels to this file (id, classes, source).
        public var labelCache: String?
        /// Decode every image.
        public var decode = false
        /// Check every ground-truth mask against its image's size (implies decoding).
        public var checkMasks = false

        public init() {}
    }

    public struct Result: Codable, Sendable, CustomStringConvertible {
        public let images: Int
        public let positives: Int
        /// imagesWithClassCount[n] = images with n classes.
        public let imagesWithClassCount: [Int]
        public let decoded: Int
        public let masksChecked: Int
        public let skipped: [String]
        public let seconds: Double

        public var description: String {
            let histogram = imagesWithClassCount.enumerated().dropFirst().filter { $0.element > 0 }
                .map { "\($0.element) with \($0.offset)" }.joined(separator: ", ")
            var lines = ["images by number of classes: \(histogram)"]
            if imagesWithClassCount[0] > 0 { lines.append("warning: \(imagesWithClassCount[0]) image(s) have no class at all") }
            if decoded > 0 || masksChecked > 0 {
                lines.append("decoded \(decoded) image(s), checked \(masksChecked) mask(s) in \(String(format: "%.1f", seconds)) s")
            }
            if !skipped.isEmpty {
                lines.append("skipped \(skipped.count) unreadable image(s): \(skipped.prefix(10).joined(separator: ", "))")
            }
            return lines.joined(separator: "\n")
        }
    }

    public static func run(_ options: Settings, in context: StageContext) throws -> Result {
        let communicator = context.communicator, log = context.log, warn = context.warn
        let start = DispatchTime.now().uptimeNanoseconds
        let dataset = try context.requireDataset(for: name)
        let list = try dataset.list(options.list)
        try dataset.validate(list)
        // Rank 0 builds (and caches) the labels; the others read the cache or build their own.
        let labels = try dataset.imageLabels(ids: list.ids, cache: communicator.isRoot ? options.labelCache : nil,
                                             warn: communicator.isRoot ? warn : { _ in })
        var histogram = [Int](repeating: 0, count: dataset.classCount + 1)
        for id in list.ids { histogram[labels.classes[id]?.count ?? 0] += 1 }
        log("\(list.source): \(list.ids.count) images, \(histogram.enumerated().reduce(0) { $0 + $1.offset * $1.element }) positive labels")

        let source = ImageSource(dataset: dataset, skipUnreadable: context.runtime.skipUnreadable)
        var counts: [Int64] = [0, 0]  // decoded, masks checked
        if options.decode || options.checkMasks {
            let mine = Sharding.contiguousRange(count: list.ids.count, rank: communicator.rank, size: communicator.size)
            for (done, index) in mine.enumerated() {
                let id = list.ids[index]
                guard let image = try source.image(id) else { continue }
                counts[0] += 1
                if options.checkMasks, dataset.groundTruthPath(id) != nil {
                    _ = try dataset.groundTruth(id, width: image.width, height: image.height)
                    counts[1] += 1
                }
                if communicator.isRoot, (done + 1) % 500 == 0 {
                    log("  rank 0: \(done + 1) of \(mine.count) images checked")
                }
            }
        }
        try communicator.allreduceSum(&counts)
        let skipped = try communicator.allgather(string: source.skippedImages.map(\.id).joined(separator: "\n"))
            .flatMap { $0.split(separator: "\n").map(String.init) }
        for (id, reason) in source.skippedImages { warn("skipped unreadable image \(id): \(reason)") }
        return Result(images: list.ids.count, positives: histogram.enumerated().reduce(0) { $0 + $1.offset * $1.element },
                      imagesWithClassCount: histogram, decoded: Int(counts[0]), masksChecked: Int(counts[1]),
                      skipped: skipped, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
