/// Pillow's NEAREST resize, as the DeepLab reference shrinks label maps to
/// each output's size: per axis the source coordinate starts at half the
/// ratio and is accumulated in Double (not (d + 0.5) * ratio, which differs
/// at exact half-integers).
public enum NearestResize {
    /// The source index of each output index.
    public static func sourceIndices(input: Int, output: Int) -> [Int] {
        if input == output { return Array(0..<input) }
        let ratio = Double(input) / Double(output)
        var source = 0.5 * ratio
        var indices: [Int] = []
        indices.reserveCapacity(output)
        for _ in 0..<output {
            indices.append(min(input - 1, Int(source)))
            source += ratio
        }
        return indices
    }

    /// Resizes each of `planes` label maps [height, width] to [newHeight, newWidth].
    public static func resize(_ input: UnsafePointer<Int32>, planes: Int, height: Int, width: Int,
                              output: UnsafeMutablePointer<Int32>, newHeight: Int, newWidth: Int) {
        let rows = sourceIndices(input: height, output: newHeight), columns = sourceIndices(input: width, output: newWidth)
        for p in 0..<planes {
            let source = input + p * height * width, target = output + p * newHeight * newWidth
            for (y, sy) in rows.enumerated() {
                for (x, sx) in columns.enumerated() { target[y * newWidth + x] = source[sy * width + sx] }
            }
        }
    }
}
