import Formats
import Foundation

/// A tiny PASCAL VOC 2012 folder made on the fly: JPEG images of several
/// sizes, palette masks (SegmentationClass), grey SBD-style masks
/// (SegmentationClassAug), annotation XML and the ImageSets lists.
public struct TinyVOC {
    public struct Image {
        public let id: String
        public let width: Int
        public let height: Int
        /// Class indices (0..<20) drawn as rectangles.
        public let classes: [Int]
        public let inVal: Bool
        public let hasAugmentedMask: Bool
        public let hasAnnotation: Bool
    }

    public let root: String
    public let images: [Image]

    /// Builds the folder under `directory`.
    public static func make(in directory: String) throws -> TinyVOC {
        let root = directory + "/VOC2012"
        let names = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                     "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
        let images = [
            Image(id: "2007_000032", width: 50, height: 38, classes: [0, 14], inVal: false, hasAugmentedMask: true, hasAnnotation: true),
            Image(id: "2007_000039", width: 37, height: 45, classes: [19], inVal: true, hasAugmentedMask: true, hasAnnotation: true),
            Image(id: "2008_000002", width: 40, height: 40, classes: [7], inVal: false, hasAugmentedMask: true, hasAnnotation: true),
            Image(id: "2008_000008", width: 60, height: 33, classes: [12, 14], inVal: false, hasAugmentedMask: true, hasAnnotation: false),
            Image(id: "2009_000001", width: 45, height: 30, classes: [2], inVal: true, hasAugmentedMask: false, hasAnnotation: true),
            Image(id: "2010_000005", width: 33, height: 52, classes: [8, 17], inVal: false, hasAugmentedMask: false, hasAnnotation: true),
        ]
        for folder in ["JPEGImages", "SegmentationClass", "SegmentationClassAug", "Annotations", "ImageSets/Segmentation"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(folder)", withIntermediateDirectories: true)
        }
        for (n, image) in images.enumerated() {
            var pixels = [UInt8](repeating: 0, count: image.width * image.height * 3)
            var mask = [UInt8](repeating: 0, count: image.width * image.height)
            for y in 0..<image.height {
                for x in 0..<image.width {
                    let i = y * image.width + x
                    pixels[3 * i] = UInt8((x * 5 + n * 30) % 256)
                    pixels[3 * i + 1] = UInt8((y * 7 + n * 10) % 256)
                    pixels[3 * i + 2] = UInt8((x + y) * 3 % 256)
                }
            }
            // One rectangle per class, side by side; a 1-pixel ignore border around each.
            for (k, c) in image.classes.enumerated() {
                let x0 = 2 + k * image.width / image.classes.count, x1 = (k + 1) * image.width / image.classes.count - 2
                for y in 3..<(image.height - 3) {
                    for x in x0..<x1 {
                        let border = y == 3 || y == image.height - 4 || x == x0 || x == x1 - 1
                        mask[y * image.width + x] = border ? 255 : UInt8(c + 1)
                        pixels[3 * (y * image.width + x)] = UInt8(40 + 10 * c)
                    }
                }
            }
            try JPEG.write(RGBImage(width: image.width, height: image.height, pixels: pixels),
                           to: "\(root)/JPEGImages/\(image.id).jpg", quality: 90)
            try PNG.write(IndexedImage(width: image.width, height: image.height, indices: mask, palette: VOCPalette.colors),
                          to: "\(root)/SegmentationClass/\(image.id).png")
            if image.hasAugmentedMask {
                try PNG.write(IndexedImage(width: image.width, height: image.height, indices: mask),
                              to: "\(root)/SegmentationClassAug/\(image.id).png")
            }
            if image.hasAnnotation {
                var xml = "<annotation>\n  <filename>\(image.id).jpg</filename>\n"
                for c in image.classes {
                    // A part whose name is not a class, and a difficult object: as in real VOC files.
                    xml += "  <object>\n    <name>\(names[c])</name>\n    <difficult>1</difficult>\n"
                    xml += "    <part><name>head</name></part>\n  </object>\n"
                }
                xml += "</annotation>\n"
                try AtomicFile.write(xml, to: "\(root)/Annotations/\(image.id).xml")
            }
        }
        let train = images.filter { !$0.inVal }.map(\.id).joined(separator: "\n") + "\n"
        let val = images.filter(\.inVal).map(\.id).joined(separator: "\n") + "\n"
        try AtomicFile.write(train, to: "\(root)/ImageSets/Segmentation/train.txt")
        try AtomicFile.write(val, to: "\(root)/ImageSets/Segmentation/val.txt")
        return TinyVOC(root: root, images: images)
    }
}
