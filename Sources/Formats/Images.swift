/// An 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B (HWC).
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGB pixel count does not match \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: (r: UInt8, g: UInt8, b: UInt8) = (0, 0, 0)) {
        self.width = width
        self.height = height
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = fill.r
            pixels[3 * i + 1] = fill.g
            pixels[3 * i + 2] = fill.b
        }
        self.pixels = pixels
    }
}

/// An image of 8-bit indices: class ids of a segmentation mask. With a palette
/// it is stored as a palette PNG (VOC's SegmentationClass); without one as an
/// 8-bit grey PNG of raw values (SegmentationClassAug).
public struct IndexedImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var indices: [UInt8]
    /// RGB triples, 3 bytes per entry, or nil for a grey image.
    public var palette: [UInt8]?

    public init(width: Int, height: Int, indices: [UInt8], palette: [UInt8]? = nil) {
        precondition(indices.count == width * height, "index count does not match \(width)x\(height)")
        precondition(palette.map { $0.count % 3 == 0 && $0.count <= 768 } ?? true, "palette must be RGB triples, at most 256")
        self.width = width
        self.height = height
        self.indices = indices
        self.palette = palette
    }
}

/// The PASCAL VOC colour map: for index i, bit 3j + c of i feeds bit 7 - j of
/// channel c (R, G, B). Index 255 (ignore) is (224, 224, 192).
public enum VOCPalette {
    public static let colors: [UInt8] = {
        var palette = [UInt8](repeating: 0, count: 256 * 3)
        for index in 0..<256 {
            var value = index
            var rgb = [0, 0, 0]
            for j in 0..<8 {
                for channel in 0..<3 {
                    rgb[channel] |= ((value >> channel) & 1) << (7 - j)
                }
                value >>= 3
            }
            for channel in 0..<3 { palette[3 * index + channel] = UInt8(rgb[channel]) }
        }
        return palette
    }()
}
