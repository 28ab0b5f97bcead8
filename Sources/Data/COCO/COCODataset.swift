import Formats
import Foundation

/// MS COCO 2014 as `sccam prepare-coco` leaves it (`COCOLayout`): the
/// official image folders, class-id masks, the image lists of images with an
/// annotation, their labels, and the class table.
public struct COCODataset: SegmentationDataset {
    public let root: String
    public let layout: COCOLayout
    public let classNames: [String]
    public var kind: DatasetKind { .coco }

    public init(root: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError("\(root): no such folder; --coco-root must point at the COCO folder holding annotations/ and train2014/")
        }
        layout = COCOLayout(root: root)
        guard let text = try? String(contentsOfFile: layout.classes, encoding: .utf8) else {
            throw DataError("\(layout.classes): not found; run `sccam prepare-coco --coco-root \(root) --split train2014` (and val2014) first")
        }
        var names: [String] = []
        for (number, line) in text.split(separator: "\n").enumerated() {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 3, Int(fields[0]) == number + 1 else {
                throw DataError("\(layout.classes):\(number + 1): expected 'label<TAB>COCO id<TAB>name' with labels 1, 2, ...; rerun sccam prepare-coco")
            }
            names.append(String(fields[2]))
        }
        guard !names.isEmpty, names.count < 255 else { throw DataError("\(layout.classes): holds \(names.count) classes; expected 1 to 254") }
        self.root = root
        classNames = names
    }

    /// VOC's list names as COCO's: the reference's train_aug and train become
    /// train2014, val becomes val2014, so every stage's default list works here.
    public static let vocListNames = ["train_aug": "train2014", "train": "train2014", "val": "val2014"]

    /// `train2014`, `val2014` (any prepared split; VOC's names map onto them) or a list file's path.
    public func list(_ name: String) throws -> ImageList {
        var name = name
        if let split = Self.vocListNames[name], !FileManager.default.fileExists(atPath: layout.list(name)) { name = split }
        let prepared = layout.list(name)
        if !name.contains("/"), FileManager.default.fileExists(atPath: prepared) { return try ImageList(reading: prepared) }
        guard FileManager.default.fileExists(atPath: name) else {
            throw DataError("\(prepared): not found; run `sccam prepare-coco --coco-root \(root) --split \(name)`, or give a list file")
        }
        return try ImageList(reading: name)
    }

    public func imagePath(_ id: String) -> String { layout.imagePath(id) ?? "\(root)/\(id).jpg" }

    public func groundTruthPath(_ id: String) -> String? {
        layout.maskPath(id).flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
    }

    public func groundTruthFolder(forList name: String) throws -> String {
        guard let first = try list(name).ids.first, let split = COCOLayout.split(ofName: first) else {
            throw DataError("\(name): its images are not named COCO_<split>_<id>, so their masks cannot be found")
        }
        return layout.masks(split)
    }

    /// From ImageLabels/<split>.tsv of every split the ids come from.
    public func imageLabels(ids: [String], cache: String?, warn: (String) -> Void) throws -> ImageLabels {
        var classes: [String: [Int]] = [:]
        for split in Set(ids.compactMap(COCOLayout.split(ofName:))).sorted() {
            let path = layout.labels(split)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw DataError("\(path): not found; run `sccam prepare-coco --coco-root \(root) --split \(split)`")
            }
            for (number, line) in text.split(separator: "\n").enumerated() {
                let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
                let labels = fields.count == 2 ? fields[1].split(separator: ",").map { Int($0) } : [nil]
                guard fields.count == 2, labels.allSatisfy({ $0.map { (1...classNames.count).contains($0) } ?? false }) else {
                    throw DataError("\(path):\(number + 1): expected 'name<TAB>labels 1-\(classNames.count), comma-separated'; rerun sccam prepare-coco")
                }
                classes[String(fields[0])] = labels.map { $0! - 1 }
            }
        }
        if let missing = ids.first(where: { classes[$0] == nil }) {
            throw DataError("\(missing): has no image labels in \(layout.root)/ImageLabels; is it an image of a prepared split?")
        }
        return ImageLabels(classes: classes, classNames: classNames)
    }
}
