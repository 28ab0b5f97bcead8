import Formats

/// The reference's per-sample training pipeline (spec 3.3), in its order:
/// random long-side resize (bicubic), horizontal flip, colour jitter in a
/// random order, normalisation, random crop or pad to a square, CHW.
public struct TrainingAugmentation: Sendable {
    /// Long side drawn uniformly from these integers (256...512 in the reference).
    public var longSide: ClosedRange<Int> = 256...512
    /// Square crop size: 224 for SC-CAM rounds, 448 for the round-0 baseline.
    public var cropSize: Int = 224
    public var brightness: Double = 0.3
    public var contrast: Double = 0.3
    public var saturation: Double = 0.3
    public var hue: Double = 0.1

    public init(cropSize: Int = 224, longSide: ClosedRange<Int> = 256...512) {
        self.cropSize = cropSize
        self.longSide = longSide
    }

    /// Python's round(): halves to even.
    static func roundHalfEven(_ value: Double) -> Int { Int(value.rounded(.toNearestOrEven)) }

    /// The resize target for a long side L: `(round(w*L/h), L)` if w < h, else `(L, round(h*L/w))`.
    public static func longSideTarget(width: Int, height: Int, longSide: Int) -> (width: Int, height: Int) {
        width < height
            ? (roundHalfEven(Double(width * longSide) / Double(height)), longSide)
            : (longSide, roundHalfEven(Double(height * longSide) / Double(width)))
    }

    /// The augmented sample as a [3, cropSize, cropSize] tensor.
    public func apply(to image: RGBImage, random: inout SampleRandom) -> [Float] {
        // 1. Random long-side resize.
        let target = Self.longSideTarget(width: image.width, height: image.height, longSide: random.integer(in: longSide))
        var resized = BicubicResize.resize(image, width: max(1, target.width), height: max(1, target.height))
        // 2. Horizontal flip with probability 0.5.
        if random.unit() < 0.5 { resized = Self.mirrored(resized) }
        // 3. Colour jitter.
        jitterColors(&resized.pixels, random: &random)
        // 4.-6. Normalise, then crop or pad into a zero (dataset-mean) container.
        let normalized = Normalization.chw(resized)
        return crop(normalized, width: resized.width, height: resized.height, random: &random)
    }

    /// torchvision 0.2's ColorJitter on 8-bit RGB pixels: factors drawn in the
    /// order brightness, contrast, saturation, hue; applied in a shuffled order.
    public func jitterColors(_ pixels: inout [UInt8], random: inout SampleRandom) {
        var operations: [(inout [UInt8]) -> Void] = []
        let b = Float(random.uniform(max(0, 1 - brightness), 1 + brightness))
        operations.append { PillowColor.adjustBrightness(&$0, factor: b) }
        let c = Float(random.uniform(max(0, 1 - contrast), 1 + contrast))
        operations.append { PillowColor.adjustContrast(&$0, factor: c) }
        let s = Float(random.uniform(max(0, 1 - saturation), 1 + saturation))
        operations.append { PillowColor.adjustSaturation(&$0, factor: s) }
        // The reference adds uint8(h * 255): truncation toward zero, wrapped modulo 256.
        let h = Int(random.uniform(-hue, hue) * 255)
        operations.append { PillowColor.shiftHue(&$0, by: h) }
        random.shuffle(&operations)
        for operation in operations { operation(&pixels) }
    }

    /// Per axis, width first: a larger image is cropped at a random offset, a
    /// smaller one placed at a random offset in the zero-filled container.
    func crop(_ chw: [Float], width: Int, height: Int, random: inout SampleRandom) -> [Float] {
        let size = cropSize
        let (containerLeft, imageLeft, containerTop, imageTop) = cropPlacement(width: width, height: height, random: &random)
        let copyWidth = min(size, width), copyHeight = min(size, height)
        var out = [Float](repeating: 0, count: 3 * size * size)
        for c in 0..<3 {
            for y in 0..<copyHeight {
                let source = c * width * height + (imageTop + y) * width + imageLeft
                let target = c * size * size + (containerTop + y) * size + containerLeft
                out[target..<(target + copyWidth)] = chw[source..<(source + copyWidth)]
            }
        }
        return out
    }

    /// Where a crop goes, drawn width first: (container left, image left,
    /// container top, image top). Per axis, an image larger than the crop is
    /// cropped at a random offset; a smaller one sits at a random offset in the container.
    public func cropPlacement(width: Int, height: Int, random: inout SampleRandom) -> (Int, Int, Int, Int) {
        let size = cropSize
        let (containerLeft, imageLeft) = width > size ? (0, random.integer(in: 0...(width - size))) : (random.integer(in: 0...(size - width)), 0)
        let (containerTop, imageTop) = height > size ? (0, random.integer(in: 0...(height - size))) : (random.integer(in: 0...(size - height)), 0)
        return (containerLeft, imageLeft, containerTop, imageTop)
    }

    static func mirrored(_ image: RGBImage) -> RGBImage {
        var pixels = image.pixels
        for y in 0..<image.height {
            for x in 0..<(image.width / 2) {
                for c in 0..<3 {
                    pixels.swapAt(3 * (y * image.width + x) + c, 3 * (y * image.width + image.width - 1 - x) + c)
                }
            }
        }
        return RGBImage(width: image.width, height: image.height, pixels: pixels)
    }
}
