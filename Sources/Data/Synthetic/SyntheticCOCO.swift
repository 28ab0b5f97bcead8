import Formats
import Foundation
import Kernels

/// A small MS COCO-layout dataset made from nothing, for `sccam demo --dataset
/// coco`: the demo's four classes (SyntheticVOC's sub-types) under their COCO
/// category ids (person 1, car 3, airplane 5, cat 17: not contiguous), written
/// as `train2014/` and `val2014/` JPEGs with `annotations/instances_<split>.json`.
/// Every object is a polygon annotation (a ring is two half-rings: a
/// multi-polygon object), some images hold a crowd of small blobs annotated
/// as an uncompressed RLE, and some hold nothing and have no annotation. The
/// pixels are painted from the annotations' own masks, so image and
/// annotation agree as pycocotools draws them.
public enum SyntheticCOCO {
    /// SyntheticVOC's class → COCO category id and name.
    public static let categories: [(voc: Int, id: Int, name: String)] = [(14, 1, "person"), (6, 3, "car"), (0, 5, "airplane"), (7, 17, "cat")]
    public static let splits = ["train2014", "val2014"]

    public struct Summary: Sendable {
        public let images: [String: Int]
        public let annotations: Int
        public let crowds: Int
        public let empty: Int
    }

    /// Writes `count` images of `width` x `height` under `root`, about a fifth in val2014.
    public static func make(at root: String, count: Int, width: Int, height: Int, seed: UInt64 = 1,
                            validationShare: Double = 0.2) throws -> Summary {
        let random = CounterRandom(seed: seed)
        var documents = [String: (images: [String], annotations: [String])]()
        var annotationID: Int64 = 1, crowds = 0, empty = 0, total = 0
        for n in 0..<count {
            func draw(_ slot: UInt64, _ extra: UInt64 = 0) -> Double { random.uniform(UInt64(n), slot, extra, 2) }
            let split = draw(2) < validationShare ? "val2014" : "train2014"
            let id = Int64(n + 1) * 7  // ids with gaps, ascending with n
            var pixels = background(width: width, height: height, draw: draw)
            var annotations: [String] = []
            let isEmpty = draw(3) < 0.05
            let objectCount = isEmpty ? 0 : draw(1) < 0.3 ? 2 : 1
            var used = Set<Int>()
            for o in 0..<objectCount {
                let category = categories[Int(draw(10 + UInt64(o)) * Double(categories.count)) % categories.count]
                guard used.insert(category.id).inserted else { continue }
                let subtypes = SyntheticVOC.catalogue[category.voc]!
                let subtype = subtypes[Int(draw(20 + UInt64(o)) * Double(subtypes.count)) % subtypes.count]
                let radius = Double(min(width, height)) * (0.26 + 0.12 * draw(300 + UInt64(o)))
                let cx = radius + draw(310 + UInt64(o)) * (Double(width) - 2 * radius)
                let cy = radius + draw(320 + UInt64(o)) * (Double(height) - 2 * radius)
                let polygons = outline(subtype.shape, cx: cx, cy: cy, radius: radius)
                let masks = polygons.map { COCORLE.polygon($0, height: height, width: width) }
                let mask = COCORLE.union(masks)!
                paint(subtype, mask: mask, into: &pixels, width: width)
                let area = mask.counts.enumerated().filter { $0.offset % 2 == 1 }.reduce(0) { $0 + Int($1.element) }
                let segmentation = "[" + polygons.map { "[" + $0.map { String(format: "%.2f", $0) }.joined(separator: ",") + "]" }.joined(separator: ",") + "]"
                annotations.append(annotation(id: annotationID, image: id, category: category.id, crowd: false, area: area, segmentation: segmentation))
                annotationID += 1
            }
            if !isEmpty && draw(4) < 0.12 {
                // A crowd: small person-coloured blobs in a corner band, one RLE annotation with iscrowd 1.
                let category = categories[0], subtype = SyntheticVOC.catalogue[category.voc]![0]
                var bits = [UInt8](repeating: 0, count: width * height)  // column-major
                for blob in 0..<6 {
                    let bx = draw(400, UInt64(blob)) * Double(width), by = Double(height) * (0.8 + 0.2 * draw(410, UInt64(blob)))
                    let r = Double(min(width, height)) * 0.05
                    for x in 0..<width {
                        for y in 0..<height where (Double(x) + 0.5 - bx) * (Double(x) + 0.5 - bx) + (Double(y) + 0.5 - by) * (Double(y) + 0.5 - by) <= r * r {
                            bits[x * height + y] = 1
                        }
                    }
                }
                let mask = COCORLE.encode(columnMajor: bits, height: height, width: width)
                paint(subtype, mask: mask, into: &pixels, width: width)
                let area = bits.reduce(0) { $0 + Int($1) }
                let counts = "{\"counts\":[" + mask.counts.map(String.init).joined(separator: ",") + "],\"size\":[\(height),\(width)]}"
                annotations.append(annotation(id: 900_100_000_000 + annotationID, image: id, category: category.id, crowd: true, area: area,
                                              segmentation: counts))
                annotationID += 1
                crowds += 1
            }
            if annotations.isEmpty { empty += 1 }
            total += annotations.count
            let name = COCOLayout.name(split: split, id: id)
            try JPEG.write(RGBImage(width: width, height: height, pixels: pixels), to: "\(COCOLayout(root: root).images(split))/\(name).jpg",
                           quality: 92)
            documents[split, default: ([], [])].images.append(
                "{\"id\":\(id),\"width\":\(width),\"height\":\(height),\"file_name\":\"\(name).jpg\"}")
            documents[split, default: ([], [])].annotations += annotations
        }
        let categoryJSON = categories.map { "{\"id\":\($0.id),\"name\":\"\($0.name)\",\"supercategory\":\"demo\"}" }.joined(separator: ",")
        for split in splits {
            let document = documents[split] ?? ([], [])
            let json = "{\"info\":{\"description\":\"sccam demo\"},\"images\":[" + document.images.joined(separator: ",")
                + "],\"annotations\":[" + document.annotations.joined(separator: ",\n") + "],\"categories\":[" + categoryJSON + "]}\n"
            try AtomicFile.write(json, to: COCOLayout(root: root).annotations(split))
        }
        return Summary(images: documents.mapValues { $0.images.count }, annotations: total, crowds: crowds, empty: empty)
    }

    static func annotation(id: Int64, image: Int64, category: Int, crowd: Bool, area: Int, segmentation: String) -> String {
        "{\"id\":\(id),\"image_id\":\(image),\"category_id\":\(category),\"iscrowd\":\(crowd ? 1 : 0),\"area\":\(area).0,\"bbox\":[0,0,0,0],\"segmentation\":\(segmentation)}"
    }

    /// A shape's polygons: a disc as a 24-gon, a ring as two half-rings.
    static func outline(_ shape: SyntheticVOC.Shape, cx: Double, cy: Double, radius r: Double) -> [[Double]] {
        func arc(_ radius: Double, from: Double, to: Double, steps: Int) -> [Double] {
            (0...steps).flatMap { i -> [Double] in
                let angle = from + (to - from) * Double(i) / Double(steps)
                return [cx + radius * cos(angle), cy + radius * sin(angle)]
            }
        }
        switch shape {
        case .disc: return [Array(arc(r, from: 0, to: 2 * .pi, steps: 24).dropLast(2))]
        case .box: return [[cx - 0.9 * r, cy - 0.7 * r, cx + 0.9 * r, cy - 0.7 * r, cx + 0.9 * r, cy + 0.7 * r, cx - 0.9 * r, cy + 0.7 * r]]
        case .triangle: return [[cx, cy - 0.8 * r, cx + 0.96 * r, cy + 0.8 * r, cx - 0.96 * r, cy + 0.8 * r]]
        case .ring:
            return [0.0, Double.pi].map { start in
                let outer = arc(r, from: start, to: start + .pi, steps: 12)
                let inner = arc(0.45 * r, from: start + .pi, to: start, steps: 12)
                return outer + inner
            }
        }
    }

    static func background(width: Int, height: Int, draw: (UInt64, UInt64) -> Double) -> [UInt8] {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let greyA = 70 + draw(100, 0) * 100, greyB = 70 + draw(110, 0) * 100
        let a = (0..<3).map { greyA + draw(101 + UInt64($0), 0) * 40 - 20 }, b = (0..<3).map { greyB + draw(111 + UInt64($0), 0) * 40 - 20 }
        for y in 0..<height {
            for x in 0..<width {
                let t = (Double(x) / Double(width) + Double(y) / Double(height)) / 2
                let grain = draw(200, UInt64(y * width + x)) * 16 - 8
                for c in 0..<3 { pixels[3 * (y * width + x) + c] = UInt8(max(0, min(255, a[c] * (1 - t) + b[c] * t + grain))) }
            }
        }
        return pixels
    }

    /// The sub-type's texture over the mask's pixels.
    static func paint(_ subtype: SyntheticVOC.Subtype, mask: COCORLE, into pixels: inout [UInt8], width: Int) {
        var covered = [UInt8](repeating: 0, count: mask.height * mask.width)
        covered.withUnsafeMutableBufferPointer { mask.paint(1, into: $0.baseAddress!) }
        for (i, inside) in covered.enumerated() where inside == 1 {
            let color = subtype.color(x: i % width, y: i / width)
            (pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2]) = color
        }
    }
}
