/// The lattice's per-row arithmetic, four lanes at a time when the row
/// length is a multiple of 4 (the CRF pads its label rows to that, as
/// densecrf's SSE path does), else one by one. Either way each lane sees the same float operations in the same
/// order, so padding changes no value.
enum RowOperations {
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ chunk: Int) -> SIMD4<Float> {
        UnsafeRawPointer(p).loadUnaligned(fromByteOffset: chunk * 16, as: SIMD4<Float>.self)
    }

    @inline(__always)
    static func store(_ v: SIMD4<Float>, _ p: UnsafeMutablePointer<Float>, _ chunk: Int) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, toByteOffset: chunk * 16, as: SIMD4<Float>.self)
    }

    /// y += w * (x * s)   (s = 1 multiplies exactly, so it also serves unscaled rows)
    @inline(__always)
    static func addWeighted(_ y: UnsafeMutablePointer<Float>, _ w: Float, _ x: UnsafePointer<Float>, scale s: Float, count n: Int) {
        if n % 4 == 0 {
            let w8 = SIMD4(repeating: w), s8 = SIMD4(repeating: s)
            for chunk in 0..<(n / 4) { store(load(y, chunk) + w8 * (load(x, chunk) * s8), y, chunk) }
        } else {
            for l in 0..<n { y[l] += w * (x[l] * s) }
        }
    }

    /// new = old + 0.5 * (plus + minus)
    @inline(__always)
    static func blur(_ new: UnsafeMutablePointer<Float>, _ old: UnsafePointer<Float>, _ plus: UnsafePointer<Float>,
                     _ minus: UnsafePointer<Float>, count n: Int) {
        if n % 4 == 0 {
            let half = SIMD4<Float>(repeating: 0.5)
            for chunk in 0..<(n / 4) { store(load(old, chunk) + half * (load(plus, chunk) + load(minus, chunk)), new, chunk) }
        } else {
            for l in 0..<n { new[l] = old[l] + 0.5 * (plus[l] + minus[l]) }
        }
    }

    /// y += a * x
    @inline(__always)
    static func addScaled(_ y: UnsafeMutablePointer<Float>, _ a: Float, _ x: UnsafePointer<Float>, count n: Int) {
        if n % 4 == 0 {
            let a8 = SIMD4(repeating: a)
            for chunk in 0..<(n / 4) { store(load(y, chunk) + a8 * load(x, chunk), y, chunk) }
        } else {
            for l in 0..<n { y[l] += a * x[l] }
        }
    }

    /// a = (energy given ? -energy : a) - w * (filtered * s): one kernel's Potts message
    @inline(__always)
    static func subtractPairwise(from a: UnsafeMutablePointer<Float>, start energy: UnsafePointer<Float>?, weight w: Float,
                                 filtered: UnsafePointer<Float>, scale s: Float, count n: Int) {
        if n % 4 == 0 {
            let w4 = SIMD4(repeating: w), s4 = SIMD4(repeating: s)
            for chunk in 0..<(n / 4) {
                let base = energy.map { -load($0, chunk) } ?? load(a, chunk)
                store(base - w4 * (load(filtered, chunk) * s4), a, chunk)
            }
        } else {
            for l in 0..<n { a[l] = (energy.map { -$0[l] } ?? a[l]) - w * (filtered[l] * s) }
        }
    }
}
