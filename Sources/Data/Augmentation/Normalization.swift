import Formats

/// The reference's input normalisation (spec 1.8): per channel R, G, B,
/// `(v / 255 - mean) / std`, computed in Double and rounded to Float once.
public enum Normalization {
    public static let mean: [Double] = [0.485, 0.456, 0.406]
    public static let std: [Double] = [0.229, 0.224, 0.225]

    /// For each channel, the 256 possible normalised values of a byte.
    static let table: [[Float]] = (0..<3).map { c in
        (0..<256).map { Float((Double($0) / 255 - mean[c]) / std[c]) }
    }

    /// An RGB image as a normalised CHW tensor, optionally mirrored left-right.
    public static func chw(_ image: RGBImage, flipped: Bool = false) -> [Float] {
        let plane = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * plane)
        out.withUnsafeMutableBufferPointer { out in
            image.pixels.withUnsafeBufferPointer { pixels in
                for y in 0..<image.height {
                    for x in 0..<image.width {
                        let source = 3 * (y * image.width + (flipped ? image.width - 1 - x : x))
                        let target = y * image.width + x
                        for c in 0..<3 { out[c * plane + target] = table[c][Int(pixels[source + c])] }
                    }
                }
            }
        }
        return out
    }
}
