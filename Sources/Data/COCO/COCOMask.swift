import Foundation

/// COCO's run-length masks, computed exactly as pycocotools' `maskApi.c`
/// computes them (coco-2014.md 5): masks are column-major (index x * h + y),
/// runs alternate starting with a run of zeros, and polygons are rasterised
/// on a 1/5-pixel grid with an even-odd fill of the pixel centres.
public struct COCORLE: Equatable, Sendable {
    public let height: Int
    public let width: Int
    /// Run lengths over the column-major pixels: zeros, ones, zeros, ...
    public let counts: [UInt32]

    public init(height: Int, width: Int, counts: [UInt32]) {
        self.height = height
        self.width = width
        self.counts = counts
    }

    /// The runs' sum: h * w for a well-formed mask.
    public var pixelCount: Int { counts.reduce(0) { $0 + Int($1) } }

    /// Sets, in a row-major h x w `mask`, every pixel this RLE covers to `value`,
    /// unless `keep` says the pixel keeps what it holds.
    public func paint(_ value: UInt8, into mask: UnsafeMutablePointer<UInt8>, keep: (UInt8) -> Bool = { _ in false }) {
        var index = 0, inside = false
        for run in counts {
            let end = index + Int(run)
            if inside {
                for t in index..<end {
                    let pixel = (t % height) * width + t / height
                    if !keep(mask[pixel]) { mask[pixel] = value }
                }
            }
            index = end
            inside.toggle()
        }
    }

    /// The union of several masks of one size (pycocotools' `merge`, not intersected).
    public static func union(_ masks: [COCORLE]) -> COCORLE? {
        guard let first = masks.first else { return nil }
        guard masks.count > 1 else { return first }
        var bits = [UInt8](repeating: 0, count: first.height * first.width)
        for mask in masks {
            var index = 0, inside = false
            for run in mask.counts {
                if inside { for t in index..<(index + Int(run)) { bits[t] = 1 } }
                index += Int(run)
                inside.toggle()
            }
        }
        return encode(columnMajor: bits, height: first.height, width: first.width)
    }

    /// `rleEncode`: the runs of a column-major 0/1 mask.
    public static func encode(columnMajor bits: [UInt8], height: Int, width: Int) -> COCORLE {
        var counts: [UInt32] = []
        var previous: UInt8 = 0, run: UInt32 = 0
        for bit in bits {
            if bit != previous {
                counts.append(run)
                run = 0
                previous = bit
            }
            run += 1
        }
        counts.append(run)
        return COCORLE(height: height, width: width, counts: counts)
    }

    /// `rleFrPoly`: one polygon (x0, y0, x1, y1, ...; an odd trailing number
    /// is ignored) rasterised at h x w.
    public static func polygon(_ xy: [Double], height h: Int, width w: Int) -> COCORLE {
        let k = xy.count / 2
        let scale = 5.0
        var x = [Int32](repeating: 0, count: k + 1), y = [Int32](repeating: 0, count: k + 1)
        for j in 0..<k {
            x[j] = cInt(scale * xy[2 * j] + 0.5)
            y[j] = cInt(scale * xy[2 * j + 1] + 0.5)
        }
        if k > 0 {
            x[k] = x[0]
            y[k] = y[0]
        }
        // Every point along the boundary on the upsampled grid.
        var u: [Int32] = [], v: [Int32] = []
        for j in 0..<k {
            var xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1]
            let dx = abs(xe - xs), dy = abs(ys - ye)
            let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye)
            if flip {
                swap(&xs, &xe)
                swap(&ys, &ye)
            }
            let s = dx >= dy ? Double(ye - ys) / Double(dx) : Double(xe - xs) / Double(dy)
            if dx >= dy {
                for d in 0...dx {
                    let t = flip ? dx - d : d
                    u.append(t + xs)
                    v.append(cInt(Double(ys) + s * Double(t) + 0.5))
                }
            } else {
                for d in 0...dy {
                    let t = flip ? dy - d : d
                    v.append(t + ys)
                    u.append(cInt(Double(xs) + s * Double(t) + 0.5))
                }
            }
        }
        // The boundary's crossings of pixel-centre columns, back on the pixel grid.
        var indices: [UInt32] = []
        if u.count > 1 {
            for j in 1..<u.count where u[j] != u[j - 1] {
                var xd = Double(u[j] < u[j - 1] ? u[j] : u[j] - 1)
                xd = (xd + 0.5) / scale - 0.5
                if xd.rounded(.down) != xd || xd < 0 || xd > Double(w - 1) { continue }
                var yd = Double(v[j] < v[j - 1] ? v[j] : v[j - 1])
                yd = (yd + 0.5) / scale - 0.5
                if yd < 0 { yd = 0 } else if yd > Double(h) { yd = Double(h) }
                yd = yd.rounded(.up)
                indices.append(UInt32(truncatingIfNeeded: Int32(xd) &* Int32(truncatingIfNeeded: h) &+ Int32(yd)))
            }
        }
        indices.append(UInt32(truncatingIfNeeded: h * w))
        indices.sort()
        var previous: UInt32 = 0
        for j in indices.indices {
            let t = indices[j]
            indices[j] = t &- previous
            previous = t
        }
        // Two toggles at one pixel cancel: their zero-length run joins its neighbours.
        var counts: [UInt32] = [indices[0]]
        var j = 1
        while j < indices.count {
            if indices[j] > 0 {
                counts.append(indices[j])
                j += 1
            } else {
                j += 1
                if j < indices.count {
                    counts[counts.count - 1] &+= indices[j]
                    j += 1
                }
            }
        }
        return COCORLE(height: h, width: w, counts: counts)
    }

    /// C's double-to-int conversion on x86: toward zero, and INT_MIN for NaN
    /// or values out of range (a repeated vertex divides 0 by 0 there).
    static func cInt(_ value: Double) -> Int32 {
        guard value.isFinite, value > -2_147_483_649, value < 2_147_483_648 else { return Int32.min }
        return Int32(value.rounded(.towardZero))
    }

    /// `rleToString`: COCO's compressed form (6 bits a character, deltas from
    /// the run two back after the third).
    public var compressedString: String {
        var bytes: [UInt8] = []
        for i in counts.indices {
            var x = Int64(counts[i])
            if i > 2 { x -= Int64(counts[i - 2]) }
            var more = true
            while more {
                var c = UInt8(truncatingIfNeeded: x & 0x1f)
                x >>= 5
                more = (c & 0x10) != 0 ? x != -1 : x != 0
                if more { c |= 0x20 }
                bytes.append(c + 48)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `rleFrString`: the counts of a compressed string; nil when it holds a
    /// character outside COCO's alphabet or ends inside a value.
    public static func fromCompressed<Bytes: Collection>(_ string: Bytes, height: Int, width: Int) -> COCORLE? where Bytes.Element == UInt8 {
        var counts: [UInt32] = []
        var iterator = string.makeIterator()
        var pending = iterator.next()
        while let first = pending {
            var x: Int64 = 0, k: Int64 = 0, more = true
            var character: UInt8? = first
            while more {
                guard let byte = character, byte >= 48, byte < 48 + 64 else { return nil }
                let c = Int64(byte - 48)
                x |= (c & 0x1f) << (5 * k)
                more = (c & 0x20) != 0
                k += 1
                if !more && (c & 0x10) != 0 { x |= -1 << (5 * k) }
                character = more ? iterator.next() : nil
                guard k <= 12 else { return nil }
            }
            if counts.count > 2 { x += Int64(counts[counts.count - 2]) }
            counts.append(UInt32(truncatingIfNeeded: x))
            pending = iterator.next()
        }
        return COCORLE(height: height, width: width, counts: counts)
    }
}
