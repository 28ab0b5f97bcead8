import Formats
import Foundation

/// 20-class image-level labels, made as the reference made cls_labels.npy:
/// every `<name>` element of `Annotations/<id>.xml` whose text is a class name
/// sets that class (difficult and truncated objects included; part names such
/// as "head" are not class names and so are ignored).
public struct ImageLabels: Sendable {
    /// id → the classes present (indices 0..<classNames.count, ascending).
    public private(set) var classes: [String: [Int]]
    /// Ids whose labels came from the mask because they had no annotation.
    public private(set) var fromMasks: [String]
    /// The dataset's object classes.
    public let classNames: [String]

    public init(classes: [String: [Int]], fromMasks: [String] = [], classNames: [String] = VOCClasses.names) {
        self.classes = classes
        self.fromMasks = fromMasks
        self.classNames = classNames
    }

    /// The classes named in an annotation file's text: one linear pass over
    /// its bytes (a hostile file cannot make it quadratic).
    public static func classes(inAnnotation xml: String) -> [Int] {
        let open = Array("<name>".utf8), close = Array("</name>".utf8)
        var found = Set<Int>()
        var bytes = Array(xml.utf8)
        bytes.withUnsafeMutableBufferPointer { text in
            func matches(_ tag: [UInt8], at i: Int) -> Bool {
                i + tag.count <= text.count && tag.indices.allSatisfy { text[i + $0] == tag[$0] }
            }
            var i = 0
            while i < text.count {
                guard matches(open, at: i) else { i += 1; continue }
                let start = i + open.count
                var end = start
                while end < text.count && !matches(close, at: end) { end += 1 }
                guard end < text.count else { break }
                let name = String(decoding: UnsafeBufferPointer(rebasing: text[start..<end]), as: UTF8.self)
                if let index = VOCClasses.index(of: name.trimmingCharacters(in: .whitespacesAndNewlines)) { found.insert(index) }
                i = end + close.count
            }
        }
        return found.sorted()
    }

    /// The classes present in a mask (values 1...20).
    public static func classes(inMask mask: IndexedImage) -> [Int] {
        var seen = [Bool](repeating: false, count: 256)
        for value in mask.indices { seen[Int(value)] = true }
        return (1...VOCClasses.count).filter { seen[$0] }.map { $0 - 1 }
    }

    /// Labels for `ids`, from the cache file when it has them all, else built
    /// from the annotations (or, failing those, the masks, with a warning) and
    /// written to the cache atomically.
    public static func load(dataset: VOCDataset, ids: [String], cache: String?,
                            warn: (String) -> Void) throws -> ImageLabels {
        var labels = ImageLabels(classes: [:], fromMasks: [])
        if let cache, FileManager.default.fileExists(atPath: cache) {
            labels = try read(cache)
            if ids.allSatisfy({ labels.classes[$0] != nil }) { return labels }
        }
        for id in ids where labels.classes[id] == nil {
            let annotation = dataset.annotationPath(id)
            if let xml = try? String(contentsOfFile: annotation, encoding: .utf8) {
                labels.classes[id] = classes(inAnnotation: xml)
            } else if let maskPath = dataset.groundTruthPath(id) {
                labels.classes[id] = classes(inMask: try PNG.readIndexed(maskPath))
                labels.fromMasks.append(id)
            } else {
                throw DataError("\(id): has neither \(annotation) nor a segmentation mask, so its image labels are unknown")
            }
        }
        if !labels.fromMasks.isEmpty {
            let shown = labels.fromMasks.prefix(5).joined(separator: ", ")
            warn("\(labels.fromMasks.count) image(s) have no annotation XML; their labels come from their masks (\(shown)\(labels.fromMasks.count > 5 ? ", ..." : ""))")
        }
        if let cache { try labels.write(cache) }
        return labels
    }

    /// The multi-hot vector of an image, one entry per class.
    public func multiHot(_ id: String) -> [Float]? {
        guard let present = classes[id] else { return nil }
        var vector = [Float](repeating: 0, count: classNames.count)
        for c in present { vector[c] = 1 }
        return vector
    }

    /// One line per image: `id<TAB>class names, comma-separated<TAB>annotation|mask`.
    public func write(_ path: String) throws {
        var text = "# sccam image-level labels: id, classes present, where they came from\n"
        let masks = Set(fromMasks)
        for id in classes.keys.sorted() {
            let names = classes[id]!.map { classNames[$0] }.joined(separator: ",")
            text += "\(id)\t\(names)\t\(masks.contains(id) ? "mask" : "annotation")\n"
        }
        try AtomicFile.write(text, to: path)
    }

    public static func read(_ path: String) throws -> ImageLabels {
        try parse(String(decoding: AtomicFile.read(path), as: UTF8.self), path: path)
    }

    /// Parses the cache file's text; `path` names it in errors.
    public static func parse(_ text: String, path: String) throws -> ImageLabels {
        var labels = ImageLabels(classes: [:], fromMasks: [])
        for (number, line) in text.split(separator: "\n").enumerated() where !line.hasPrefix("#") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 3 else {
                throw DataError("\(path):\(number + 1): expected 'id<TAB>classes<TAB>source'; delete the file to rebuild it")
            }
            var present: [Int] = []
            for name in fields[1].split(separator: ",") {
                guard let index = VOCClasses.index(of: String(name)) else {
                    throw DataError("\(path):\(number + 1): unknown class '\(name)'; delete the file to rebuild it")
                }
                present.append(index)
            }
            labels.classes[String(fields[0])] = present.sorted()
            if fields[2] == "mask" { labels.fromMasks.append(String(fields[0])) }
        }
        return labels
    }
}
