import Foundation

/// One pixel's enclosing simplex (spec 4.2, steps 1 to 6), in float32, on
/// scratch memory of its own (one per thread: no array checks in this loop).
struct Simplex {
    let d: Int
    let scales: UnsafeMutablePointer<Float>
    let inverseD: Float
    let elevated: UnsafeMutablePointer<Float>
    let remainder: UnsafeMutablePointer<Int>
    let rank: UnsafeMutablePointer<Int>
    let barycentric: UnsafeMutablePointer<Float>

    init(dimension d: Int, scales: [Float]) {
        self.d = d
        self.scales = .allocate(capacity: d)
        self.scales.initialize(from: scales, count: d)
        inverseD = 1 / Float(d + 1)
        elevated = .allocate(capacity: d + 1)
        remainder = .allocate(capacity: d + 1)
        rank = .allocate(capacity: d + 1)
        barycentric = .allocate(capacity: d + 2)
    }

    func deallocate() {
        scales.deallocate()
        elevated.deallocate()
        remainder.deallocate()
        rank.deallocate()
        barycentric.deallocate()
    }

    @inline(__always)
    func enclose(_ feature: UnsafePointer<Float>) {
        let D = d + 1
        // 1. Elevate onto the plane sum(e) = 0 of R^D.
        var sum: Float = 0
        for j in stride(from: d, through: 1, by: -1) {
            let c = feature[j - 1] * scales[j - 1]
            elevated[j] = sum - Float(j) * c
            sum = sum + c
        }
        elevated[0] = sum
        // 2. The nearest remainder-0 point, rounding half to even as cvtps2dq does.
        var total = 0
        for m in 0...d {
            let v = Int(DenseCRFRounding.halfEven(elevated[m] * inverseD))
            remainder[m] = v * D
            total += v
        }
        // 3. Ranks of the differences: the largest gets 0, ties to the lower index.
        for m in 0...d { rank[m] = 0 }
        for m in 0..<d {
            let dm = elevated[m] - Float(remainder[m])
            for n in (m + 1)...d {
                if dm < elevated[n] - Float(remainder[n]) { rank[m] += 1 } else { rank[n] += 1 }
            }
        }
        // 4. Back onto the plane.
        for m in 0...d {
            rank[m] += total
            if rank[m] < 0 {
                rank[m] += D
                remainder[m] += D
            } else if rank[m] > d {
                rank[m] -= D
                remainder[m] -= D
            }
        }
        // 5. Barycentric weights.
        for k in 0...(d + 1) { barycentric[k] = 0 }
        for m in 0...d {
            let t = (elevated[m] - Float(remainder[m])) * inverseD
            barycentric[d - rank[m]] += t
            barycentric[d - rank[m] + 1] -= t
        }
        barycentric[0] = barycentric[0] + (1 + barycentric[D])
    }

    /// 6. The D vertices: their d stored coordinates and weights.
    @inline(__always)
    func writeVertices(keys: UnsafeMutablePointer<Int16>, weights: UnsafeMutablePointer<Float>) {
        let D = d + 1
        for r in 0...d {
            for m in 0..<d {
                keys[r * d + m] = Int16(truncatingIfNeeded: remainder[m] + (rank[m] <= d - r ? r : r - D))
            }
            weights[r] = barycentric[r]
        }
    }
}

/// Round half to even, as cvtps2dq under the default rounding mode: adding
/// and removing 1.5 x 2^23 (SSE2 has no rounding instruction, and `rounded`
/// would call libm for every coordinate).
public enum DenseCRFRounding {
    @inline(__always)
    public static func halfEven(_ x: Float) -> Float {
        guard abs(x) < 4_194_304 else { return x.rounded(.toNearestOrEven) }
        let magic: Float = 12_582_912
        return (x + magic) - magic
    }
}
