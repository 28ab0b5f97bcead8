/// PyTorch's bilinear interpolation with align_corners = False (half-pixel
/// centres): separable, in Float, with its transpose for backward.
public enum BilinearResize {
    /// How source coordinates are scaled.
    public enum Rule: String, Codable, Sendable, CaseIterable {
        /// in / out: resizing to a size, and `scale_factor=` before PyTorch 1.6.
        case sizeRatio = "ratio"
        /// 1 / factor as given: `scale_factor=` from PyTorch 1.6 on.
        case inverseFactor = "inverse"
    }

    /// Source index pair and weight of the second for each output index.
    static func taps(input: Int, output: Int, scale: Float? = nil) -> [(Int, Int, Float)] {
        let scale = scale ?? Float(input) / Float(output)
        return (0..<output).map { d in
            let source = max((Float(d) + 0.5) * scale - 0.5, 0)
            let i0 = Int(source)  // floor: source >= 0
            let i1 = min(i0 + 1, input - 1)
            return (i0, i1, source - Float(i0))
        }
    }

    /// The coordinate scale of resizing by `factor` under `rule` (nil: in / out).
    public static func scale(factor: Double, rule: Rule) -> Float? {
        rule == .inverseFactor ? Float(1 / factor) : nil
    }

    /// Calls `body(output index, source indices, weights)` for every output
    /// pixel of one plane: (y0, y1, x0, x1) and (wy, wx) of the second taps.
    @inline(__always)
    static func forEachTap(rows: [(Int, Int, Float)], columns: [(Int, Int, Float)],
                           _ body: (Int, (Int, Int, Int, Int), Float, Float) -> Void) {
        let newWidth = columns.count
        for (y, (y0, y1, wy)) in rows.enumerated() {
            for (x, (x0, x1, wx)) in columns.enumerated() { body(y * newWidth + x, (y0, y1, x0, x1), wy, wx) }
        }
    }

    /// Resizes each of `planes` [height, width] planes to [newHeight, newWidth];
    /// `scale` overrides the coordinate scale (`scale(factor:rule:)`).
    public static func resize(_ input: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
                              output: UnsafeMutablePointer<Float>, newHeight: Int, newWidth: Int,
                              scale: Float? = nil) {
        let rows = taps(input: height, output: newHeight, scale: scale)
        let columns = taps(input: width, output: newWidth, scale: scale)
        Parallel.forEach(planes) { p in
            let source = input + p * height * width, target = output + p * newHeight * newWidth
            forEachTap(rows: rows, columns: columns) { index, at, wy, wx in
                let top = (1 - wx) * source[at.0 * width + at.2] + wx * source[at.0 * width + at.3]
                let bottom = (1 - wx) * source[at.1 * width + at.2] + wx * source[at.1 * width + at.3]
                target[index] = (1 - wy) * top + wy * bottom
            }
        }
    }

    /// The transpose of `resize` (its backward): each output gradient goes
    /// back to its four sources with the forward weights, added to
    /// `inputGradient` [planes, height, width].
    public static func resizeTranspose(_ outputGradient: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
                                       newHeight: Int, newWidth: Int, inputGradient: UnsafeMutablePointer<Float>,
                                       scale: Float? = nil) {
        let rows = taps(input: height, output: newHeight, scale: scale)
        let columns = taps(input: width, output: newWidth, scale: scale)
        Parallel.forEach(planes) { p in
            let source = inputGradient + p * height * width, target = outputGradient + p * newHeight * newWidth
            forEachTap(rows: rows, columns: columns) { index, at, wy, wx in
                let top = (1 - wy) * target[index], bottom = wy * target[index]
                source[at.0 * width + at.2] += (1 - wx) * top
                source[at.0 * width + at.3] += wx * top
                source[at.1 * width + at.2] += (1 - wx) * bottom
                source[at.1 * width + at.3] += wx * bottom
            }
        }
    }
}
