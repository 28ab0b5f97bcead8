import Formats
import Foundation

/// Image ids in order, with where each came from (for error messages).
public struct ImageList: Sendable {
    public let source: String
    public let ids: [String]
    /// The line of `source` each id was read from.
    public let lines: [Int]

    public init(source: String, ids: [String], lines: [Int]) {
        precondition(ids.count == lines.count)
        self.source = source
        self.ids = ids
        self.lines = lines
    }

    /// Reads a list file: the reference's format (`/JPEGImages/<id>.jpg
    /// /SegmentationClassAug/<id>.png`, the id being the first field's file
    /// name) or one id per line. Blank lines and `#` comments are skipped.
    public init(reading path: String) throws {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw DataError("\(path): cannot read this image list (missing file?)")
        }
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw DataError("\(path): is not a text file (not UTF-8); an image list holds one image id per line")
        }
        try self.init(parsing: text, source: path)
    }

    /// Parses a list file's text; `source` names it in errors.
    public init(parsing text: String, source path: String) throws {
        var ids: [String] = [], lines: [Int] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let first = String(line.split(separator: " ")[0])
            let id = first.hasSuffix(".jpg") || first.hasSuffix(".png")
                ? URL(fileURLWithPath: first).deletingPathExtension().lastPathComponent : first
            guard !id.isEmpty, !id.contains("/") else {
                throw DataError("\(path):\(number + 1): cannot read an image id from '\(line)'")
            }
            ids.append(id)
            lines.append(number + 1)
        }
        self.init(source: path, ids: ids, lines: lines)
    }
}

/// A PASCAL VOC 2012 root as users have it, and the image lists the
/// reference trains and evaluates on.
public struct VOCDataset: SegmentationDataset {
    public let root: String
    public var kind: DatasetKind { .voc }
    public var classNames: [String] { VOCClasses.names }

    public init(root: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError("\(root): no such folder; --voc-root must point at VOCdevkit/VOC2012 (the folder holding JPEGImages/)")
        }
        guard FileManager.default.fileExists(atPath: "\(root)/JPEGImages") else {
            throw DataError("\(root): has no JPEGImages/ folder; --voc-root must point at VOCdevkit/VOC2012")
        }
        self.root = root
    }

    public func imagePath(_ id: String) -> String { "\(root)/JPEGImages/\(id).jpg" }
    public func annotationPath(_ id: String) -> String { "\(root)/Annotations/\(id).xml" }
    /// The folder of the palette masks the pipeline scores against by default.
    public var segmentationFolder: String { "\(root)/SegmentationClass" }
    public func segmentationPath(_ id: String) -> String { "\(segmentationFolder)/\(id).png" }
    public func augmentedSegmentationPath(_ id: String) -> String { "\(root)/SegmentationClassAug/\(id).png" }

    /// The ground-truth mask of an image: SegmentationClassAug when present
    /// (what the reference evaluates with), else SegmentationClass.
    public func groundTruthPath(_ id: String) -> String? {
        [augmentedSegmentationPath(id), segmentationPath(id)].first { FileManager.default.fileExists(atPath: $0) }
    }

    public var hasAugmentedMasks: Bool { FileManager.default.fileExists(atPath: "\(root)/SegmentationClassAug") }

    /// The named list: `train` and `val` from ImageSets/Segmentation; `train_aug`
    /// as the reference builds it; anything else is read as a list file path.
    public func list(_ name: String) throws -> ImageList {
        switch name {
        case "train", "val":
            return try ImageList(reading: "\(root)/ImageSets/Segmentation/\(name).txt")
        case "train_aug":
            let ids = try trainAugList()
            return ImageList(source: "train_aug (SegmentationClassAug minus val)", ids: ids, lines: ids.indices.map { $0 + 1 })
        default:
            return try ImageList(reading: name)
        }
    }

    /// Every image with a mask in SegmentationClassAug, minus `val`, sorted by
    /// id. The reference's train_aug.txt is the SBD train+val images together
    /// with VOC's segmentation train images, minus VOC's val; its lines are in
    /// id order, which for VOC's YYYY_NNNNNN ids is plain string order.
    public func trainAugList() throws -> [String] {
        let folder = "\(root)/SegmentationClassAug"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw DataError("""
                \(folder): not found. train_aug needs the SBD-augmented masks (SegmentationClassAug); \
                unpack them into the VOC root, or use --list train
                """)
        }
        let val = Set(try list("val").ids)
        return names.filter { $0.hasSuffix(".png") }.map { String($0.dropLast(4)) }
            .filter { !val.contains($0) }.sorted()
    }
}

extension VOCDataset {
    /// SegmentationClass, whatever the list: the reference scores against it.
    public func groundTruthFolder(forList name: String) throws -> String { segmentationFolder }

    public func imageLabels(ids: [String], cache: String?, warn: (String) -> Void) throws -> ImageLabels {
        try ImageLabels.load(dataset: self, ids: ids, cache: cache, warn: warn)
    }
}
