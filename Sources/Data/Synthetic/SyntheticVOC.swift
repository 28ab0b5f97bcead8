import Formats
import Foundation
import Kernels

/// A small PASCAL VOC-layout dataset made from nothing, for the embedded demo:
/// a few parent classes, each with visually distinct sub-types (shape,
/// texture and colour variants), drawn on varied backgrounds, sometimes
/// several objects per image. It writes JPEGImages/, SegmentationClass/
/// (palette), SegmentationClassAug/ (grey), Annotations/ (XML) and
/// ImageSets/Segmentation/{train,val}.txt, deterministically from a seed.
public struct SyntheticVOC: Sendable {
    public enum Shape: Sendable { case disc, box, triangle, ring }
    public enum Texture: Sendable { case solid, stripes, checker, dots }

    /// One visual sub-type of a parent class.
    public struct Subtype: Sendable {
        public let shape: Shape
        public let texture: Texture
        public let color: (UInt8, UInt8, UInt8)

        /// The colour of pixel (x, y) of an object of this sub-type: its texture, in its colour or a third of it.
        public func color(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
            let on: Bool
            switch texture {
            case .solid: on = true
            case .stripes: on = (x / 3) % 2 == 0
            case .checker: on = ((x / 4) + (y / 4)) % 2 == 0
            case .dots: on = !(x % 5 < 2 && y % 5 < 2)
            }
            return on ? color : (color.0 / 3, color.1 / 3, color.2 / 3)
        }
    }

    public struct Object: Sendable {
        public let parent: Int
        public let subtype: Int
    }

    public struct Image: Sendable {
        public let id: String
        public let objects: [Object]
        public let inVal: Bool
        public var classes: [Int] { Array(Set(objects.map(\.parent))).sorted() }
    }

    /// VOC class index → its sub-types. The demo's classes: aeroplane, car, cat, person.
    /// A class keeps one hue family (or, for person, no hue: near white and near black)
    /// and its sub-types differ in shape, texture and lightness: hue survives the
    /// training colour jitter (±36°) while shape and texture set the sub-types apart.
    public static let catalogue: [Int: [Subtype]] = [
        0: [Subtype(shape: .triangle, texture: .solid, color: (50, 80, 235)), Subtype(shape: .box, texture: .stripes, color: (130, 170, 255))],
        6: [Subtype(shape: .box, texture: .solid, color: (225, 30, 30)), Subtype(shape: .disc, texture: .checker, color: (150, 15, 15))],
        7: [Subtype(shape: .disc, texture: .dots, color: (40, 210, 40)), Subtype(shape: .ring, texture: .solid, color: (15, 120, 15))],
        14: [Subtype(shape: .ring, texture: .solid, color: (240, 240, 240)), Subtype(shape: .triangle, texture: .stripes, color: (20, 20, 20))],
    ]

    public let root: String
    public let images: [Image]

    /// Writes `count` images of `width` x `height` under `root`.
    public static func make(at root: String, count: Int, width: Int, height: Int, seed: UInt64 = 1,
                            validationShare: Double = 0.2) throws -> SyntheticVOC {
        let random = CounterRandom(seed: seed)
        let parents = catalogue.keys.sorted()
        var images: [Image] = []
        for n in 0..<count {
            func draw(_ slot: UInt64) -> Double { random.uniform(UInt64(n), slot, 0, 0) }
            let id = String(format: "2099_%06d", n)
            let objectCount = draw(1) < 0.3 ? 2 : 1
            var objects: [Object] = []
            for o in 0..<objectCount {
                let parent = parents[Int(draw(10 + UInt64(o)) * Double(parents.count)) % parents.count]
                if objects.contains(where: { $0.parent == parent }) { continue }
                let subtypes = catalogue[parent]!.count
                objects.append(Object(parent: parent, subtype: Int(draw(20 + UInt64(o)) * Double(subtypes)) % subtypes))
            }
            let image = Image(id: id, objects: objects, inVal: draw(2) < validationShare)
            try write(image, index: n, root: root, width: width, height: height, random: random)
            images.append(image)
        }
        for folder in ["ImageSets/Segmentation"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(folder)", withIntermediateDirectories: true)
        }
        try AtomicFile.write(images.filter { !$0.inVal }.map(\.id).joined(separator: "\n") + "\n", to: "\(root)/ImageSets/Segmentation/train.txt")
        try AtomicFile.write(images.filter(\.inVal).map(\.id).joined(separator: "\n") + "\n", to: "\(root)/ImageSets/Segmentation/val.txt")
        return SyntheticVOC(root: root, images: images)
    }

    static func write(_ image: Image, index n: Int, root: String, width: Int, height: Int, random: CounterRandom) throws {
        func draw(_ slot: UInt64, _ extra: UInt64 = 0) -> Double { random.uniform(UInt64(n), slot, extra, 1) }
        // Background: a smooth gradient between two mid greys with a mild tint,
        // and grain: varied, but never the saturated or extreme colours of the objects.
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let greyA = 70 + draw(100) * 100, greyB = 70 + draw(110) * 100
        let a = (0..<3).map { greyA + draw(101 + UInt64($0)) * 40 - 20 }, b = (0..<3).map { greyB + draw(111 + UInt64($0)) * 40 - 20 }
        for y in 0..<height {
            for x in 0..<width {
                let t = (Double(x) / Double(width) + Double(y) / Double(height)) / 2
                let grain = draw(200, UInt64(y * width + x)) * 16 - 8
                for c in 0..<3 { pixels[3 * (y * width + x) + c] = UInt8(max(0, min(255, a[c] * (1 - t) + b[c] * t + grain))) }
            }
        }
        var mask = [UInt8](repeating: 0, count: width * height)
        for (o, object) in image.objects.enumerated() {
            let subtype = catalogue[object.parent]![object.subtype]
            let radius = Double(min(width, height)) * (0.26 + 0.12 * draw(300 + UInt64(o)))
            let cx = radius + draw(310 + UInt64(o)) * (Double(width) - 2 * radius)
            let cy = radius + draw(320 + UInt64(o)) * (Double(height) - 2 * radius)
            for y in 0..<height {
                for x in 0..<width {
                    let dx = Double(x) + 0.5 - cx, dy = Double(y) + 0.5 - cy
                    let inside: Bool
                    switch subtype.shape {
                    case .disc: inside = dx * dx + dy * dy <= radius * radius
                    case .box: inside = abs(dx) <= radius * 0.9 && abs(dy) <= radius * 0.7
                    case .triangle: inside = dy <= radius * 0.8 && dy >= -radius * 0.8 && abs(dx) <= (dy + radius * 0.8) * 0.6
                    case .ring: let d = (dx * dx + dy * dy).squareRoot(); inside = d <= radius && d >= radius * 0.45
                    }
                    guard inside else { continue }
                    let color = subtype.color(x: x, y: y)
                    let i = y * width + x
                    (pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2]) = color
                    mask[i] = UInt8(object.parent + 1)
                }
            }
        }
        // VOC marks object boundaries as "ignore" (255).
        var outlined = mask
        for y in 0..<height {
            for x in 0..<width where mask[y * width + x] != 0 {
                let neighbours = [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)]
                if neighbours.contains(where: { $0.0 < 0 || $0.1 < 0 || $0.0 >= width || $0.1 >= height || mask[$0.1 * width + $0.0] != mask[y * width + x] }) {
                    outlined[y * width + x] = 255
                }
            }
        }
        try JPEG.write(RGBImage(width: width, height: height, pixels: pixels), to: "\(root)/JPEGImages/\(image.id).jpg", quality: 92)
        try PNG.write(IndexedImage(width: width, height: height, indices: outlined, palette: VOCPalette.colors),
                      to: "\(root)/SegmentationClass/\(image.id).png")
        try PNG.write(IndexedImage(width: width, height: height, indices: outlined), to: "\(root)/SegmentationClassAug/\(image.id).png")
        var xml = "<annotation>\n  <filename>\(image.id).jpg</filename>\n"
        for object in image.objects { xml += "  <object>\n    <name>\(VOCClasses.names[object.parent])</name>\n  </object>\n" }
        try AtomicFile.write(xml + "</annotation>\n", to: "\(root)/Annotations/\(image.id).xml")
    }
}
