import Formats
import Kernels

/// DeepLab-v2's training sample (deeplab-v2.md 4.2), in the reference's
/// order: a scale drawn from a discrete set (sizes truncated), OpenCV's
/// bilinear resize of the BGR image and Pillow's nearest of the labels,
/// bottom/right padding to the crop with the mean colour and 255, a random
/// crop (inclusive offsets), a horizontal flip, and the BGR mean subtracted
/// in double, rounded to float. Values stay on the 0-255 scale.
public struct SegmentationAugmentation: Sendable {
    /// The reference's per-channel means, B, G, R.
    public static let meanBGR: [Double] = [104.008, 116.669, 122.675]
    public static let referenceScales = [0.5, 0.75, 1.0, 1.25, 1.5]

    public var cropSize: Int
    public var scales: [Double]
    public var flips: Bool

    public init(cropSize: Int = 321, scales: [Double] = SegmentationAugmentation.referenceScales, flips: Bool = true) {
        precondition(cropSize > 0 && !scales.isEmpty && scales.allSatisfy { $0 > 0 })
        self.cropSize = cropSize
        self.scales = scales
        self.flips = flips
    }

    /// [3, crop, crop] mean-subtracted BGR and [crop, crop] labels (255 = ignored).
    public func apply(image: RGBImage, labels: [UInt8], random: inout SampleRandom) -> (image: [Float], labels: [Int32]) {
        precondition(labels.count == image.width * image.height)
        let scale = scales[min(scales.count - 1, Int(random.unit() * Double(scales.count)))]
        let height = Int(Double(image.height) * scale), width = Int(Double(image.width) * scale)
        var bgr = Self.planarBGR(image)
        var label = labels.map(Int32.init)
        if height != image.height || width != image.width {
            // OpenCV's INTER_LINEAR on float images is PyTorch's half-pixel bilinear rule: source
            // (d + 0.5) * in/out - 0.5, clamped at both edges; an exact 2x shrink is the 2x2 mean,
            // so OpenCV's INTER_AREA switch there changes nothing.
            var scaled = [Float](repeating: 0, count: 3 * height * width)
            BilinearResize.resize(bgr, planes: 3, height: image.height, width: image.width, output: &scaled,
                                  newHeight: height, newWidth: width)
            bgr = scaled
            var resized = [Int32](repeating: 0, count: height * width)
            NearestResize.resize(label, planes: 1, height: image.height, width: image.width, output: &resized,
                                 newHeight: height, newWidth: width)
            label = resized
        }
        // Pad to at least the crop, then crop: padding keeps the mean colour and label 255.
        let paddedH = max(height, cropSize), paddedW = max(width, cropSize)
        let top = random.integer(in: 0...(paddedH - cropSize)), left = random.integer(in: 0...(paddedW - cropSize))
        let flip = flips && random.unit() < 0.5
        let plane = cropSize * cropSize
        var outImage = [Float](repeating: 0, count: 3 * plane), outLabels = [Int32](repeating: 255, count: plane)
        for c in 0..<3 {
            let mean = Self.meanBGR[c], padded = Float(Double(Float(mean)) - mean)
            for y in 0..<cropSize {
                let sy = top + y
                for x in 0..<cropSize {
                    let sx = left + (flip ? cropSize - 1 - x : x)
                    let inside = sy < height && sx < width
                    outImage[c * plane + y * cropSize + x] = inside ? Float(Double(bgr[(c * height + sy) * width + sx]) - mean) : padded
                    if c == 0 && inside { outLabels[y * cropSize + x] = label[sy * width + sx] }
                }
            }
        }
        return (outImage, outLabels)
    }

    /// The evaluation input: the whole image, BGR, mean subtracted in double.
    public static func evaluationInput(_ image: RGBImage) -> [Float] {
        let bgr = planarBGR(image), plane = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * plane)
        for c in 0..<3 { for i in 0..<plane { out[c * plane + i] = Float(Double(bgr[c * plane + i]) - meanBGR[c]) } }
        return out
    }

    /// CHW planes in B, G, R order, as floats 0-255 (cv2.imread's channel order).
    static func planarBGR(_ image: RGBImage) -> [Float] {
        let plane = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane {
            out[i] = Float(image.pixels[3 * i + 2])
            out[plane + i] = Float(image.pixels[3 * i + 1])
            out[2 * plane + i] = Float(image.pixels[3 * i])
        }
        return out
    }
}
