import Formats

/// Pillow's bicubic resize of 8-bit images, reproduced operation for
/// operation (spec Appendix A): separable, horizontal pass first, an 8-bit
/// clipped intermediate, filter support widened by the scale when shrinking
/// (antialiasing), weights in 22-bit fixed point. Resizing to the same size
/// is the identity, as in Pillow.
public enum BicubicResize {
    static let precisionBits = 32 - 8 - 2

    /// Keys Pillow's bicubic kernel (a = -0.5).
    @inline(__always)
    static func kernel(_ t: Double) -> Double {
        let a = -0.5
        let x = abs(t)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// For each output index: the first input index and the fixed-point weights.
    struct Coefficients {
        let taps: Int
        var start: [Int]
        var count: [Int]
        var weights: [Int32]  // outSize * taps
    }

    static func coefficients(inputSize: Int, outputSize: Int) -> Coefficients {
        let scale = Double(inputSize) / Double(outputSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var result = Coefficients(taps: taps, start: [], count: [], weights: [Int32](repeating: 0, count: outputSize * taps))
        var k = [Double](repeating: 0, count: taps)
        for xx in 0..<outputSize {
            let center = (Double(xx) + 0.5) * scale
            let xmin = max(0, Int(center - support + 0.5))
            let xmax = min(inputSize, Int(center + support + 0.5)) - xmin
            var sum = 0.0
            for x in 0..<xmax {
                k[x] = kernel((Double(x + xmin) - center + 0.5) / filterScale)
                sum += k[x]
            }
            for x in 0..<xmax {
                let w = sum != 0 ? k[x] / sum : k[x]
                // Rounded half away from zero, as Pillow's normalize_coeffs_8bpc.
                let fixed = w * Double(1 << precisionBits)
                result.weights[xx * taps + x] = Int32(w < 0 ? fixed - 0.5 : fixed + 0.5)
            }
            result.start.append(xmin)
            result.count.append(xmax)
        }
        return result
    }

    @inline(__always)
    static func clip8(_ value: Int32) -> UInt8 {
        let shifted = value >> Int32(precisionBits)
        return shifted < 0 ? 0 : shifted > 255 ? 255 : UInt8(shifted)
    }

    /// Resizes an interleaved 8-bit image with `channels` channels per pixel.
    public static func resize(_ pixels: [UInt8], width: Int, height: Int, channels: Int,
                              toWidth newWidth: Int, height newHeight: Int) -> [UInt8] {
        precondition(newWidth > 0 && newHeight > 0, "resize target must be positive")
        var current = pixels
        var currentWidth = width
        if newWidth != width {
            let c = coefficients(inputSize: width, outputSize: newWidth)
            var out = [UInt8](repeating: 0, count: newWidth * height * channels)
            current.withUnsafeBufferPointer { input in
                out.withUnsafeMutableBufferPointer { output in
                    for y in 0..<height {
                        let row = input.baseAddress! + y * width * channels
                        for xx in 0..<newWidth {
                            let start = c.start[xx], count = c.count[xx], w = c.weights.withUnsafeBufferPointer { $0.baseAddress! + xx * c.taps }
                            for channel in 0..<channels {
                                var sum: Int32 = 1 << Int32(precisionBits - 1)
                                for x in 0..<count { sum &+= Int32(row[(start + x) * channels + channel]) &* w[x] }
                                output[(y * newWidth + xx) * channels + channel] = clip8(sum)
                            }
                        }
                    }
                }
            }
            current = out
            currentWidth = newWidth
        }
        if newHeight != height {
            let c = coefficients(inputSize: height, outputSize: newHeight)
            let rowLength = currentWidth * channels
            var out = [UInt8](repeating: 0, count: newHeight * rowLength)
            current.withUnsafeBufferPointer { input in
                out.withUnsafeMutableBufferPointer { output in
                    for yy in 0..<newHeight {
                        let start = c.start[yy], count = c.count[yy]
                        c.weights.withUnsafeBufferPointer { weights in
                            let w = weights.baseAddress! + yy * c.taps
                            for i in 0..<rowLength {
                                var sum: Int32 = 1 << Int32(precisionBits - 1)
                                for y in 0..<count { sum &+= Int32(input[(start + y) * rowLength + i]) &* w[y] }
                                output[yy * rowLength + i] = clip8(sum)
                            }
                        }
                    }
                }
            }
            current = out
        }
        return current
    }

    public static func resize(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        if width == image.width && height == image.height { return image }
        return RGBImage(width: width, height: height,
                        pixels: resize(image.pixels, width: image.width, height: image.height, channels: 3,
                                       toWidth: width, height: height))
    }
}
