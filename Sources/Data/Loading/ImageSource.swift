import Formats
import Foundation

/// Decodes a data set's images, either stopping at the first unreadable one
/// (the default) or skipping such images with a warning and counting them.
public final class ImageSource: @unchecked Sendable {
    public let dataset: any SegmentationDataset
    public let skipUnreadable: Bool
    private let lock = NSLock()
    private var skipped: [(id: String, reason: String)] = []

    public init(dataset: any SegmentationDataset, skipUnreadable: Bool) {
        self.dataset = dataset
        self.skipUnreadable = skipUnreadable
    }

    /// The image, or nil when it is unreadable and skipping is on.
    public func image(_ id: String) throws -> RGBImage? {
        do {
            return try JPEG.read(dataset.imagePath(id))
        } catch {
            guard skipUnreadable else {
                throw DataError("\(error) (pass --skip-unreadable to skip such images with a warning)")
            }
            lock.lock()
            skipped.append((id, "\(error)"))
            lock.unlock()
            return nil
        }
    }

    /// Images skipped so far, with why.
    public var skippedImages: [(id: String, reason: String)] {
        lock.lock()
        defer { lock.unlock() }
        return skipped
    }
}

/// A decoded image, or nil for one skipped as unreadable, as a loader item.
public struct RGBImageBox: Sendable {
    public let image: RGBImage?
    public init(image: RGBImage?) { self.image = image }
}
