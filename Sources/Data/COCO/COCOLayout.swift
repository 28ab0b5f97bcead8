import Foundation

/// Where a COCO 2014 folder keeps what the download gives and what
/// `sccam prepare-coco` adds (coco-2014.md 1.2, the ToCo/SIPE layout):
///
///     annotations/instances_<split>.json     the download
///     <split>/COCO_<split>_%012d.jpg          the download (train2014, val2014)
///     SegmentationClass/<split>/<name>.png    class ids 0-80 (prepare-coco)
///     ImageSets/<split>.txt                   names of the images with an annotation, by id
///     ImageLabels/<split>.tsv                 name, tab, labels 1-80 ascending
///     ImageLabels/classes.tsv                 label, COCO category id, name
public struct COCOLayout: Sendable, Equatable {
    public let root: String

    public init(root: String) { self.root = root }

    public func annotations(_ split: String) -> String { "\(root)/annotations/instances_\(split).json" }
    public func images(_ split: String) -> String { "\(root)/\(split)" }
    public func masks(_ split: String) -> String { "\(root)/SegmentationClass/\(split)" }
    public func list(_ split: String) -> String { "\(root)/ImageSets/\(split).txt" }
    public func labels(_ split: String) -> String { "\(root)/ImageLabels/\(split).tsv" }
    public var classes: String { "\(root)/ImageLabels/classes.tsv" }

    /// COCO_train2014_000000000009: an image's name from its split and id.
    public static func name(split: String, id: Int64) -> String {
        "COCO_\(split)_" + String(repeating: "0", count: max(0, 12 - String(id).count)) + String(id)
    }

    /// The split a name belongs to (COCO_<split>_<id>), or nil.
    public static func split(ofName name: String) -> String? {
        guard name.hasPrefix("COCO_"), let last = name.lastIndex(of: "_"), last > name.index(name.startIndex, offsetBy: 5) else { return nil }
        return String(name[name.index(name.startIndex, offsetBy: 5)..<last])
    }

    public func imagePath(_ name: String) -> String? {
        Self.split(ofName: name).map { "\(images($0))/\(name).jpg" }
    }

    public func maskPath(_ name: String) -> String? {
        Self.split(ofName: name).map { "\(masks($0))/\(name).png" }
    }
}
