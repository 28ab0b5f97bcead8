import Data
import Formats
import Foundation
import Workflow

/// `prepare-coco`: COCO's instance annotations made into what the method
/// reads (coco-2014.md 3, 4): a class-id mask per image drawn exactly as
/// pycocotools draws it, the list of images with an annotation, and their
/// image-level labels. Ranks split the images; finished masks are skipped on
/// a rerun; every file is written atomically.
public enum PrepareCOCOStage: Stage {
    public static let name = "prepare-coco"

    /// How overlapping instances and crowd regions become one class per pixel.
    public enum Convention: String, Codable, CaseIterable, Sendable {
        /// alicranck/coco2voc (ToCo, DuPL, ...): every annotation, crowd included,
        /// by ascending area (stable), the first writer keeping a pixel; no mask
        /// for an image without annotations.
        case coco2voc
        /// ReCAM's annToMask.py: non-crowd annotations in file order, the last
        /// writer keeping a pixel; a mask for every image.
        case recam
    }

    public struct Settings: Codable, Sendable, Equatable {
        /// The COCO folder (annotations/, train2014/, val2014/).
        public var root: String
        public var split = "train2014"
        public var convention = Convention.coco2voc
        /// The annotations file when not ROOT/annotations/instances_<split>.json.
        public var annotations: String?

        public init(root: String) { self.root = root }
    }

    public struct Result: Codable, Sendable, CustomStringConvertible {
        public let images: Int
        public let annotations: Int
        /// Images with at least one annotation: the list's length.
        public let listed: Int
        public let masksWritten: Int
        public let masksAlreadyDone: Int
        public let parseSeconds: Double
        public let seconds: Double

        public var description: String {
            String(format: "%d image(s), %d annotation(s) read in %.1f s; %d listed; wrote %d mask(s), %d already done, in %.1f s",
                   images, annotations, parseSeconds, listed, masksWritten, masksAlreadyDone, seconds)
        }
    }

    public static func run(_ settings: Settings, in context: StageContext) throws -> Result {
        let start = DispatchTime.now().uptimeNanoseconds
        let layout = COCOLayout(root: settings.root)
        let path = settings.annotations ?? layout.annotations(settings.split)
        context.log("prepare-coco: reading \(path)")
        let coco = try COCOAnnotations.read(path)
        let parsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        try requireSetting(coco.categories.count <= 254, "\(path) has \(coco.categories.count) categories; a class-id mask holds at most 254")
        context.log(String(format: "%d image(s), %d annotation(s), %d categories in %.1f s", coco.images.count, coco.annotations.count,
                           coco.categories.count, parsed))
        let communicator = context.communicator
        let mine = Sharding.contiguousRange(count: coco.images.count, rank: communicator.rank, size: communicator.size)
        var written = 0, done = 0
        var progress = ProgressLine(total: mine.count)
        for (position, index) in mine.enumerated() {
            let image = coco.images[index]
            let annotations = coco.annotationsOfImage[index]
            if settings.convention == .coco2voc && annotations.isEmpty { continue }
            let target = ImageFolder(layout.masks(settings.split)).png(COCOLayout.name(split: settings.split, id: image.id))
            if FileManager.default.fileExists(atPath: target) {
                done += 1
                continue
            }
            let mask = try classMask(coco, image: index, convention: settings.convention)
            try PNG.write(IndexedImage(width: image.width, height: image.height, indices: mask), to: target)
            written += 1
            if context.isRoot { progress.update(finished: position + 1, computedHere: written, log: context.log) }
        }
        var counts: [Int64] = [Int64(written), Int64(done)]
        try communicator.allreduceSum(&counts)
        let listed = (0..<coco.images.count).filter { !coco.annotationsOfImage[$0].isEmpty }
        if context.isRoot {
            let names = listed.map { COCOLayout.name(split: settings.split, id: coco.images[$0].id) }
            try AtomicFile.write(names.map { $0 + "\n" }.joined(), to: layout.list(settings.split))
            let lines = zip(listed, names).map { index, name in
                let labels = Set(coco.annotationsOfImage[index].map { coco.label(ofCategory: coco.annotations[Int($0)].category) })
                return name + "\t" + labels.sorted().map(String.init).joined(separator: ",") + "\n"
            }
            try AtomicFile.write(lines.joined(), to: layout.labels(settings.split))
            let classes = coco.categories.enumerated().map { "\($0.offset + 1)\t\($0.element.id)\t\($0.element.name)\n" }
            try AtomicFile.write(classes.joined(), to: layout.classes)
        }
        try communicator.barrier()
        return Result(images: coco.images.count, annotations: coco.annotations.count, listed: listed.count,
                      masksWritten: Int(counts[0]), masksAlreadyDone: Int(counts[1]), parseSeconds: parsed,
                      seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    /// One image's class ids (row-major, 0 = background), painted by `convention`.
    public static func classMask(_ coco: COCOAnnotations, image index: Int, convention: Convention) throws -> [UInt8] {
        let image = coco.images[index]
        var mask = [UInt8](repeating: 0, count: image.width * image.height)
        let annotations = coco.annotationsOfImage[index].map { coco.annotations[Int($0)] }
        try mask.withUnsafeMutableBufferPointer { pixels in
            switch convention {
            case .coco2voc:
                // Ascending area, ties in file order (Python's stable sort); the first writer keeps a pixel.
                for annotation in annotations.sorted(by: { ($0.area, $0.order) < ($1.area, $1.order) }) {
                    try coco.mask(of: annotation).paint(UInt8(coco.label(ofCategory: annotation.category)), into: pixels.baseAddress!,
                                                        keep: { $0 > 0 })
                }
            case .recam:
                for annotation in annotations where !annotation.isCrowd {
                    try coco.mask(of: annotation).paint(UInt8(coco.label(ofCategory: annotation.category)), into: pixels.baseAddress!)
                }
            }
        }
        return mask
    }
}
