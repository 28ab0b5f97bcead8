import CBlockedCopy

/// How a convolution's weight gradient lies in the gradient buffer. The
/// weights themselves are always OIHW; their gradients may stay in the
/// layout oneDNN's backward-weights kernels write, so that no pass is spent
/// copying them out: the gradient exchange, the finite check and the norm are
/// blind to the order of elements, and the optimiser reads the gradient band
/// by band through `unblock` while it updates the OIHW weights.
public enum WeightGradientLayout: Sendable, Equatable {
    /// OIHW, like the weights.
    case plain
    /// OIhw16i16o (oneDNN's ABcd16b16a): tiles of 16 outputs x 16 inputs,
    /// each tap's 16 x 16 block with the output innermost. Output and input
    /// counts are multiples of 16.
    case blocked16

    /// Where element (o, i, k) of an O x I x taps tensor with `inputs` inputs sits.
    @inline(__always)
    public func element(output o: Int, input i: Int, tap k: Int, inputs: Int, taps: Int) -> Int {
        switch self {
        case .plain:
            return (o * inputs + i) * taps + k
        case .blocked16:
            let tile = (o >> 4) * (inputs >> 4) + (i >> 4)
            return ((tile * taps + k) << 8) + ((i & 15) << 4) + (o & 15)
        }
    }

    /// Copies the 16 output rows `band` of a blocked O x I x taps gradient
    /// into `rows` in OIHW order: row o (inputs x taps values) at
    /// `rows + o * rowStride`, 16 x 16 blocks transposed in registers where the
    /// CPU has AVX-512 (`paddedRowStride` gives a good stride).
    public static func unblock(band: Int, of blocked: UnsafePointer<Float>, inputs: Int, taps: Int,
                               into rows: UnsafeMutablePointer<Float>, rowStride: Int) {
        let inputTiles = inputs / 16
        for tile in 0..<inputTiles {
            // Tile (band, tile) is taps blocks of [i][o]: its 16 output rows, columns (i, k), transposed.
            sccam_groups_to_rows(blocked + (band * inputTiles + tile) * taps * 256, 16 * taps, taps,
                                 rows + tile * 16 * taps, rowStride)
        }
    }

    /// A row stride of at least `length` floats that is not a multiple of 1 KB
    /// (with power-of-two channel counts the rows would all map to one cache set,
    /// and the transposes ran at a third of the speed).
    public static func paddedRowStride(_ length: Int) -> Int {
        let stride = (length + 15) / 16 * 16
        return stride % 256 == 0 ? stride + 16 : stride
    }

    /// The gradient of an OIHW tensor of `shape`, in OIHW order.
    public func plain(_ stored: UnsafeBufferPointer<Float>, shape: [Int]) -> [Float] {
        permuted(Array(stored), shape: shape, toStored: false)
    }

    /// An OIHW tensor of `shape` laid out in this layout (the inverse of `plain`).
    public func stored(_ plain: [Float], shape: [Int]) -> [Float] {
        permuted(plain, shape: shape, toStored: true)
    }

    private func permuted(_ values: [Float], shape: [Int], toStored: Bool) -> [Float] {
        guard self == .blocked16 else { return values }
        let outputs = shape[0], inputs = shape.count > 1 ? shape[1] : 1, taps = shape.dropFirst(2).reduce(1, *)
        precondition(values.count == outputs * inputs * taps && outputs % 16 == 0 && inputs % 16 == 0, "not a 16-blocked shape \(shape)")
        var result = [Float](repeating: 0, count: values.count)
        for o in 0..<outputs {
            for i in 0..<inputs {
                for k in 0..<taps {
                    let plain = (o * inputs + i) * taps + k, stored = element(output: o, input: i, tap: k, inputs: inputs, taps: taps)
                    if toStored { result[stored] = values[plain] } else { result[plain] = values[stored] }
                }
            }
        }
        return result
    }
}
