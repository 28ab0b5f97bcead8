/// PyTorch's bilinear interpolation with align_corners = False (half-pixel
/// centres), as the reference upsamples CAMs: separable, in Float.
public enum BilinearResize {
    /// Source index pair and weight of the second for each output index.
    static func taps(input: Int, output: Int) -> [(Int, Int, Float)] {
        let scale = Float(input) / Float(output)
        return (0..<output).map { d in
            let source = max((Float(d) + 0.5) * scale - 0.5, 0)
            let i0 = Int(source)  // floor: source >= 0
            let i1 = min(i0 + 1, input - 1)
            return (i0, i1, source - Float(i0))
        }
    }

    /// Resizes each of `planes` [height, width] planes to [newHeight, newWidth].
    public static func resize(_ input: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
                              output: UnsafeMutablePointer<Float>, newHeight: Int, newWidth: Int) {
        let rows = taps(input: height, output: newHeight), columns = taps(input: width, output: newWidth)
        Parallel.forEach(planes) { p in
            let source = input + p * height * width, target = output + p * newHeight * newWidth
            for (y, (y0, y1, wy)) in rows.enumerated() {
                let r0 = source + y0 * width, r1 = source + y1 * width
                for (x, (x0, x1, wx)) in columns.enumerated() {
                    let top = (1 - wx) * r0[x0] + wx * r0[x1]
                    let bottom = (1 - wx) * r1[x0] + wx * r1[x1]
                    target[y * newWidth + x] = (1 - wy) * top + wy * bottom
                }
            }
        }
    }
}
