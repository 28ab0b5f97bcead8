/// Softmax over the labels of one pixel, with the maximum subtracted first,
/// and exp evaluated eight lanes at a time (Cephes' float polynomial, as
/// Eigen's vectorised expf that densecrf uses; within 2 ulp of expf).
/// Differences below -87 count as -87: e^-87 = 1.6e-38 against the 1 of the
/// largest label, where expf would give a denormal or 0.
enum Softmax {
    /// Floats of scratch `row` needs for `labels` values.
    static func scratchCount(labels: Int) -> Int { (labels + 7) / 8 * 8 }

    @inline(__always)
    static func exp(_ v: SIMD8<Float>) -> SIMD8<Float> {
        // e^x = 2^n e^r with n = round(x log2 e), r = x - n ln 2 (ln 2 split in two for precision).
        // Rounding by adding and removing 1.5 * 2^23 keeps every step a plain vector
        // float or integer operation (no floor, no checked conversion), even on SSE2.
        let x = v  // the caller keeps it within [-87, 88], where 2^n stays a normal float
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let shifted = x * 1.442_695_04 + magic
        let n = shifted - magic
        let r = x - n * 0.693_359_375 - n * -2.121_944_4e-4
        let z = r * r
        var y = SIMD8<Float>(repeating: 1.987_569_15e-4)
        y = y * r + 1.398_199_95e-3
        y = y * r + 8.333_451_9e-3
        y = y * r + 4.166_579_59e-2
        y = y * r + 1.666_666_55e-1
        y = y * r + 5.000_000_12e-1
        y = y * z + r + 1
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        return y * unsafeBitCast((integer &+ 127) &<< 23, to: SIMD8<Float>.self)
    }

    /// q = softmax(a) over `labels` values; `scratch` holds `scratchCount(labels:)` floats.
    @inline(__always)
    static func row(_ a: UnsafePointer<Float>, into q: UnsafeMutablePointer<Float>, labels: Int, scratch: UnsafeMutablePointer<Float>) {
        var largest = a[0]
        for l in 1..<max(1, labels) where a[l] > largest { largest = a[l] }
        let padded = scratchCount(labels: labels)
        for l in 0..<labels { scratch[l] = max(a[l] - largest, -87) }
        for l in labels..<padded { scratch[l] = -87 }
        let raw = UnsafeMutableRawPointer(scratch)
        for chunk in stride(from: 0, to: padded, by: 8) {
            let v = raw.loadUnaligned(fromByteOffset: chunk * 4, as: SIMD8<Float>.self)
            raw.storeBytes(of: exp(v), toByteOffset: chunk * 4, as: SIMD8<Float>.self)
        }
        var sum: Float = 0
        for l in 0..<labels { sum += scratch[l] }
        for l in 0..<labels { q[l] = scratch[l] / sum }
    }
}
