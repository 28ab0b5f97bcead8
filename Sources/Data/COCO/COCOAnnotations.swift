import Foundation

/// An `instances_<split>.json` read into compact arrays (coco-2014.md 8): the
/// file is mapped, not copied; images, categories and each annotation's
/// fields become small structs, and a segmentation stays a byte range of the
/// file until its mask is drawn. 604,907 annotations take ~25 MB besides the
/// mapped file, where a full parse into objects takes gigabytes.
public final class COCOAnnotations {
    public struct Image: Sendable {
        public let id: Int64
        public let width: Int
        public let height: Int
    }

    public struct Category: Sendable {
        public let id: Int
        public let name: String
    }

    public struct Annotation: Sendable {
        public let id: Int64
        /// Index into `images`.
        public let image: Int32
        /// The COCO category id (1..90 with gaps).
        public let category: Int32
        public let isCrowd: Bool
        public let area: Double
        /// Position in the file's `annotations` array.
        public let order: Int32
        /// The `segmentation` value's bytes in the file.
        let segmentation: Range<Int>
    }

    public let path: String
    /// Sorted by id.
    public let images: [Image]
    /// Sorted by id: label k (1...) is the k-th category, 0 the background.
    public let categories: [Category]
    /// In file order.
    public let annotations: [Annotation]
    /// For each image, its annotations' indices in file order.
    public let annotationsOfImage: [[Int32]]
    private let data: Data

    public static func read(_ path: String) throws -> COCOAnnotations {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw DataError("\(path): cannot read the annotations file (\(error.localizedDescription)); give the COCO folder that holds annotations/instances_<split>.json")
        }
        return try COCOAnnotations(data: data, path: path)
    }

    public init(data: Data, path: String) throws {
        self.data = data
        self.path = path
        struct RawImage { var id: Int64?, width: Int?, height: Int? }
        struct RawAnnotation {
            var id: Int64?, imageID: Int64?, category: Int64?, isCrowd = false, area = 0.0, segmentation: Range<Int>?
        }
        var rawImages: [Image] = [], rawCategories: [Category] = [], raw: [(RawAnnotation, offset: Int)] = []
        var sawImages = false, sawAnnotations = false, sawCategories = false
        try data.withUnsafeBytes { buffer in
            var scanner = JSONScanner(buffer.bindMemory(to: UInt8.self), path: path)
            try scanner.object { scanner, key in
                switch key {
                case "images":
                    sawImages = true
                    try scanner.array { scanner, index in
                        let start = scanner.position
                        var image = RawImage()
                        try scanner.object { scanner, key in
                            switch key {
                            case "id": image.id = try scanner.integer()
                            case "width": image.width = Int(try scanner.integer())
                            case "height": image.height = Int(try scanner.integer())
                            default: try scanner.skipValue()
                            }
                        }
                        guard let id = image.id, let width = image.width, let height = image.height else {
                            throw scanner.error("images[\(index)] lacks its id, width or height", at: start)
                        }
                        guard width > 0, height > 0, width <= 1 << 15, height <= 1 << 15 else {
                            throw scanner.error("images[\(index)] (id \(id)) is \(width) x \(height): sizes must be 1 to 32768", at: start)
                        }
                        rawImages.append(Image(id: id, width: width, height: height))
                    }
                case "categories":
                    sawCategories = true
                    try scanner.array { scanner, index in
                        let start = scanner.position
                        var id: Int64?, name: String?
                        try scanner.object { scanner, key in
                            switch key {
                            case "id": id = try scanner.integer()
                            case "name": name = try scanner.string()
                            default: try scanner.skipValue()
                            }
                        }
                        guard let id, let name, id >= 1, id <= 1 << 20 else {
                            throw scanner.error("categories[\(index)] lacks a positive id or a name", at: start)
                        }
                        rawCategories.append(Category(id: Int(id), name: name))
                    }
                case "annotations":
                    sawAnnotations = true
                    try scanner.array { scanner, _ in
                        let start = scanner.position
                        var annotation = RawAnnotation()
                        try scanner.object { scanner, key in
                            switch key {
                            case "id": annotation.id = try scanner.integer()
                            case "image_id": annotation.imageID = try scanner.integer()
                            case "category_id": annotation.category = try scanner.integer()
                            case "iscrowd":
                                if try scanner.peek() == .literal {
                                    annotation.isCrowd = try scanner.literal() ?? false
                                } else {
                                    annotation.isCrowd = try scanner.integer() != 0
                                }
                            case "area": annotation.area = try scanner.double()
                            case "segmentation": annotation.segmentation = try scanner.skipValue()
                            default: try scanner.skipValue()
                            }
                        }
                        raw.append((annotation, start))
                    }
                default:
                    try scanner.skipValue()
                }
            }
            scanner.skipWhitespace()
            guard scanner.atEnd else { throw scanner.error("data after the top-level object") }
        }
        guard sawImages, sawAnnotations, sawCategories else {
            throw DataError("\(path): not a COCO instances file (it needs images, annotations and categories)")
        }
        images = rawImages.sorted { $0.id < $1.id }
        for pair in zip(images, images.dropFirst()) where pair.0.id == pair.1.id {
            throw DataError("\(path): image id \(pair.0.id) appears twice")
        }
        categories = rawCategories.sorted { $0.id < $1.id }
        for pair in zip(categories, categories.dropFirst()) where pair.0.id == pair.1.id {
            throw DataError("\(path): category id \(pair.0.id) appears twice")
        }
        var imageIndex: [Int64: Int32] = [:]
        imageIndex.reserveCapacity(images.count)
        for (index, image) in images.enumerated() { imageIndex[image.id] = Int32(index) }
        let knownCategories = Set(categories.map(\.id))
        var annotations: [Annotation] = []
        annotations.reserveCapacity(raw.count)
        var ofImage = [[Int32]](repeating: [], count: images.count)
        for (order, (entry, offset)) in raw.enumerated() {
            func fail(_ message: String) -> DataError {
                DataError("\(path): byte \(offset): annotations[\(order)]\(entry.id.map { " (id \($0))" } ?? ""): \(message)")
            }
            guard let id = entry.id, let imageID = entry.imageID, let category = entry.category, let segmentation = entry.segmentation else {
                throw fail("lacks its id, image_id, category_id or segmentation")
            }
            guard let image = imageIndex[imageID] else { throw fail("refers to image id \(imageID), which is not in images") }
            guard knownCategories.contains(Int(category)) else { throw fail("has category_id \(category), which is not in categories") }
            ofImage[Int(image)].append(Int32(annotations.count))
            annotations.append(Annotation(id: id, image: image, category: Int32(category), isCrowd: entry.isCrowd, area: entry.area,
                                          order: Int32(order), segmentation: segmentation))
        }
        self.annotations = annotations
        annotationsOfImage = ofImage
    }

    /// The label of a COCO category: its position among the sorted ids, from 1.
    public func label(ofCategory id: Int32) -> Int {
        var low = 0, high = categories.count
        while low < high {
            let mid = (low + high) / 2
            if categories[mid].id < Int(id) { low = mid + 1 } else { high = mid }
        }
        return low + 1
    }

    /// An annotation's mask as pycocotools' `annToRLE` makes it: polygons
    /// rasterised at the image's size and united; an uncompressed RLE's
    /// counts as they are; a compressed one decoded. Its size must be the
    /// image's and its runs must cover the image exactly.
    public func mask(of annotation: Annotation) throws -> COCORLE {
        let image = images[Int(annotation.image)]
        let (h, w) = (image.height, image.width)
        func fail(_ message: String) -> DataError {
            DataError("\(path): byte \(annotation.segmentation.lowerBound): annotation id \(annotation.id) (image \(image.id)): \(message)")
        }
        return try data.withUnsafeBytes { buffer -> COCORLE in
            let bytes = buffer.bindMemory(to: UInt8.self)
            var scanner = JSONScanner(bytes, path: path, position: annotation.segmentation.lowerBound)
            switch try scanner.peek() {
            case .array:
                var polygons: [[Double]] = []
                try scanner.array { scanner, _ in
                    var polygon: [Double] = []
                    try scanner.array { scanner, _ in polygon.append(try scanner.double()) }
                    polygons.append(polygon)
                }
                guard let first = polygons.first else { return COCORLE(height: h, width: w, counts: [UInt32(h * w)]) }
                // pycocotools decides by the first polygon: more than 4 numbers are polygons, 4 a box.
                guard first.count > 4 else {
                    throw fail("its first polygon has \(first.count) numbers; pycocotools reads more than 4 as a polygon and cannot read the others")
                }
                let rles = polygons.map { COCORLE.polygon($0, height: h, width: w) }
                return COCORLE.union(rles)!
            case .object:
                var counts: [UInt32]?, compressed: Range<Int>?, size: [Int64] = []
                try scanner.object { scanner, key in
                    switch key {
                    case "counts":
                        if try scanner.peek() == .string {
                            compressed = try scanner.stringBytes()
                        } else {
                            var list: [UInt32] = []
                            try scanner.array { scanner, _ in
                                let value = try scanner.integer()
                                guard value >= 0, value <= Int64(UInt32.max) else { throw fail("a run of \(value) pixels") }
                                list.append(UInt32(value))
                            }
                            counts = list
                        }
                    case "size": try scanner.array { scanner, _ in size.append(try scanner.integer()) }
                    default: try scanner.skipValue()
                    }
                }
                guard size.count == 2 else { throw fail("its RLE has no [height, width] size") }
                guard size[0] == Int64(h), size[1] == Int64(w) else {
                    throw fail("its RLE is \(size[0]) x \(size[1]) but the image is \(h) x \(w)")
                }
                let rle: COCORLE
                if let counts {
                    rle = COCORLE(height: h, width: w, counts: counts)
                } else if let compressed {
                    guard let decoded = COCORLE.fromCompressed(bytes[compressed], height: h, width: w) else {
                        throw fail("its compressed RLE string holds characters outside COCO's alphabet")
                    }
                    rle = decoded
                } else {
                    throw fail("its RLE has no counts")
                }
                guard rle.pixelCount == h * w else {
                    throw fail("its RLE runs cover \(rle.pixelCount) pixels, but the image has \(h * w) (\(h) x \(w))")
                }
                return rle
            default:
                throw fail("its segmentation is neither a list of polygons nor an RLE object")
            }
        }
    }
}
