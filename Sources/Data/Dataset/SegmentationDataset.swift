import Formats
import Foundation

/// Which benchmark a dataset folder holds.
public enum DatasetKind: String, Codable, CaseIterable, Sendable {
    /// PASCAL VOC 2012: 20 classes.
    case voc
    /// MS COCO 2014 prepared by `sccam prepare-coco`: 80 classes.
    case coco
}

/// What every stage reads of a dataset, whichever it is: its classes, its
/// image lists, where an image and its ground truth are, and the image-level
/// labels. Nothing above `Data` knows which dataset it reads.
public protocol SegmentationDataset: Sendable {
    var kind: DatasetKind { get }
    var root: String { get }
    /// The object classes; label c + 1 in a mask is class c, 0 the background, 255 ignored.
    var classNames: [String] { get }
    /// A named list (train_aug, train, val; train2014, val2014) or a list file's path.
    func list(_ name: String) throws -> ImageList
    func imagePath(_ id: String) -> String
    /// The image's ground-truth class-id mask, when the dataset has one.
    func groundTruthPath(_ id: String) -> String?
    /// The folder holding the ground truth of a list's images (what the pipeline scores against).
    func groundTruthFolder(forList name: String) throws -> String
    /// The image-level labels of `ids` (indices 0..<classCount); `cache` may keep what was slow to build.
    func imageLabels(ids: [String], cache: String?, warn: (String) -> Void) throws -> ImageLabels
}

extension SegmentationDataset {
    public var classCount: Int { classNames.count }
    /// The classes of a segmentation: the background and the objects.
    public var labelCount: Int { classNames.count + 1 }

    /// Checks that every id of a list has its image; the error names the list's line.
    public func validate(_ list: ImageList) throws {
        for (index, id) in list.ids.enumerated() where !FileManager.default.fileExists(atPath: imagePath(id)) {
            throw DataError("\(list.source):\(list.lines[index]): image '\(id)' is not in the data set (\(imagePath(id)) does not exist)")
        }
    }

    /// An image's ground-truth class ids, checked against the image's size.
    public func groundTruth(_ id: String, width: Int, height: Int) throws -> IndexedImage {
        guard let path = groundTruthPath(id) else { throw DataError("\(id): has no ground-truth mask in \(root)") }
        let mask = try PNG.readIndexed(path)
        guard mask.width == width && mask.height == height else {
            throw DataError("\(path): mask is \(mask.width)x\(mask.height) but its image is \(width)x\(height); the mask belongs to another image or was resized")
        }
        return mask
    }
}

/// Opens the dataset of a kind at a root.
public func openDataset(_ kind: DatasetKind, root: String) throws -> any SegmentationDataset {
    switch kind {
    case .voc: return try VOCDataset(root: root)
    case .coco: return try COCODataset(root: root)
    }
}
