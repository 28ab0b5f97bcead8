import Foundation
import Kernels

/// The permutohedral lattice of Adams et al. as Krähenbühl's densecrf builds
/// and filters it on its SSE path (spec `dense-crf.md` section 4): built once
/// per image and feature set, then applied to any number of value vectors.
/// Every float operation happens in the spec's order and precision, and the
/// threaded loops (per pixel, per vertex) compute exactly what one thread
/// does, so the result does not depend on the thread count.
public final class PermutohedralLattice {
    public let pixelCount: Int
    /// Feature dimension d; simplices have D = d + 1 vertices.
    public let dimension: Int
    /// Vertices, phantoms included (ids 1...vertexCount; id 0 is "absent").
    public let vertexCount: Int

    /// Per pixel, its D vertex ids and barycentric weights (pixel-major).
    /// Raw memory owned by the lattice: the per-pixel loops of several threads
    /// read them, and an array would be retained and released on every call,
    /// an atomic on a cache line that both cores then fight over.
    let offsets: UnsafeMutablePointer<Int32>
    let weights: UnsafeMutablePointer<Float>
    /// Per vertex, how many pixel contributions it receives, as prefix sums.
    let contributionStart: UnsafeMutablePointer<Int32>  // [vertexCount + 2]
    /// Position-only lattices (d <= 2) sum each vertex in pixel order: on one
    /// thread by scattering pixel after pixel, as densecrf does; on several by
    /// gathering (a vertex's pixels are neighbours in the image, so its list
    /// reads nearby rows), with lists built only when the lattice is made on
    /// more than one thread. The pixels of a bilateral vertex lie all over
    /// the image: those lattices scatter in fixed pixel ranges instead.
    let positionOnly: Bool
    let gathers: Bool
    /// The gather lists: each vertex's contributing pixels, in pixel order.
    let gatherPixel: UnsafeMutablePointer<Int32>?
    let gatherWeight: UnsafeMutablePointer<Float>?
    /// Per blur direction j and vertex v: the two neighbours, 0 when absent.
    let neighbours: UnsafeMutablePointer<Int32>  // [D][vertexCount + 1][2]
    /// 1 / (1 + 2^-d), the slice's scale.
    let alpha: Float

    /// Builds the lattice of `features`, pixel-major [pixelCount][dimension].
    public init(features: UnsafePointer<Float>, pixelCount: Int, dimension d: Int) {
        precondition(d >= 1 && d <= 8 && pixelCount > 0)
        self.pixelCount = pixelCount
        dimension = d
        let D = d + 1
        // Constants in double, stored as float (4.1).
        let inverseStandardDeviation = Float(sqrt(2.0 / 3.0) * Double(D))
        let scales = (0..<d).map { k in Float(1 / sqrt(Double((k + 1) * (k + 2))) * Double(inverseStandardDeviation)) }
        alpha = 1 / (1 + powf(2, -Float(d)))

        // 4.2 per pixel (its simplex's keys and weights), and 4.4: vertex ids in
        // first-insertion order (pixels, then vertices), then 4.3: the SSE path's phantom
        // origin simplex when N is not a multiple of 4. With several threads, each numbers
        // the vertices of a range of pixels in a table of its own; merging the tables range
        // by range then gives every vertex the id of its first occurrence in pixel order,
        // as one table would.
        // Several ranges per thread, handed out as threads come free; tables start small
        // and grow, so that a lattice of few vertices (bilateral) probes a table that
        // stays in cache.
        let parts = Parallel.threadCount == 1 ? 1 : min(4 * Parallel.threadCount, max(1, pixelCount / 8192))
        let tables = (0..<parts).map { _ in VertexTable(dimension: d, expectedCount: 2048) }
        let weights = UnsafeMutablePointer<Float>.allocate(capacity: pixelCount * D)
        let offsets = UnsafeMutablePointer<Int32>.allocate(capacity: pixelCount * D)
        self.weights = weights
        self.offsets = offsets
        numbering: do {
                let barycentric = UncheckedSendable(weights), ids = UncheckedSendable(offsets)
                let simplexKeys = D * d
                Parallel.forBalancedRanges(parts, rangesPerThread: parts) { range in
                  for part in range {
                    let table = tables[part], ids = ids.value
                    let simplex = Simplex(dimension: d, scales: scales)
                    // This pixel's keys and the previous one's, swapped each pixel.
                    var keys = UnsafeMutablePointer<Int16>.allocate(capacity: simplexKeys)
                    var previous = UnsafeMutablePointer<Int16>.allocate(capacity: simplexKeys)
                    defer { simplex.deallocate(); keys.deallocate(); previous.deallocate() }
                    let first = pixelCount * part / parts, end = pixelCount * (part + 1) / parts
                    for i in first..<end {
                        simplex.enclose(features + i * d)
                        simplex.writeVertices(keys: keys, weights: barycentric.value + i * D)
                        // Neighbouring pixels often share their simplex: then its ids are known already.
                        if i > first && memcmp(keys, previous, simplexKeys * 2) == 0 {
                            for r in 0..<D { ids[i * D + r] = ids[(i - 1) * D + r] }
                        } else {
                            for r in 0..<D { ids[i * D + r] = table.insert(keys + r * d) }
                        }
                        swap(&keys, &previous)
                    }
                  }
                }
                guard parts > 1 else { break numbering }
                let table = tables[0]
                let maps = (1..<parts).map { part -> [Int32] in
                    var map = [Int32](repeating: 0, count: tables[part].count + 1)
                    for local in stride(from: 1, through: tables[part].count, by: 1) {
                        map[local] = table.insert(tables[part].keys + local * d)
                    }
                    return map
                }
                Parallel.forBalancedRanges(parts - 1, rangesPerThread: parts) { range in
                    for index in range {
                        let part = index + 1, ids = ids.value
                        maps[index].withUnsafeBufferPointer { map in
                            for slot in (pixelCount * part / parts * D)..<(pixelCount * (part + 1) / parts * D) {
                                ids[slot] = map[Int(ids[slot])]
                            }
                        }
                    }
                }
        }
        let table = tables[0]
        if pixelCount % 4 != 0 {
            var origin = [Int16](repeating: 0, count: d)
            for r in 0...d {
                for m in 0..<d { origin[m] = Int16(m <= d - r ? r : r - D) }
                _ = origin.withUnsafeBufferPointer { table.insert($0.baseAddress!) }
            }
        }
        let vertexCount = table.count
        self.vertexCount = vertexCount

        // Contributions per vertex (prefix sums), to share the splat out evenly; for the
        // gather lists (see `positionOnly`), also where each pixel range's contributions
        // to a vertex begin, so that the ranges fill the lists side by side.
        let gathers = d <= 2 && Parallel.threadCount > 1
        positionOnly = d <= 2
        self.gathers = gathers
        let ranges = gathers ? Parallel.threadCount : 1, rows = vertexCount + 2
        let counts = UnsafeMutablePointer<Int32>.allocate(capacity: ranges * rows)
        defer { counts.deallocate() }
        let start = UnsafeMutablePointer<Int32>.allocate(capacity: rows)
        start[0] = 0
        contributionStart = start
        let gatherPixel = gathers ? UnsafeMutablePointer<Int32>.allocate(capacity: pixelCount * D) : nil
        let gatherWeight = gathers ? UnsafeMutablePointer<Float>.allocate(capacity: pixelCount * D) : nil
        self.gatherPixel = gatherPixel
        self.gatherWeight = gatherWeight
        let pixelCount = pixelCount
        listing: do {
            let ids = UncheckedSendable(offsets), shared = UncheckedSendable(counts)
            Parallel.forEach(ranges) { part in
                let count = shared.value + part * rows
                count.initialize(repeating: 0, count: rows)
                for slot in (pixelCount * part / ranges * D)..<(pixelCount * (part + 1) / ranges * D) {
                    count[Int(ids.value[slot]) + 1] += 1
                }
            }
            for v in 1..<rows {
                var sum: Int32 = 0
                for part in 0..<ranges { sum += counts[part * rows + v] }
                start[v] = start[v - 1] + sum
            }
            guard let gatherPixel, let gatherWeight else { break listing }
            // counts[part][v + 1] becomes the first list slot of the range's contributions to v.
            do {
                let start = UncheckedSendable(start)
                Parallel.forRanges(vertexCount + 1, minimumChunk: 4096) { vertices in
                    for v in vertices {
                        var slot = start.value[v]
                        for part in 0..<ranges {
                            let count = shared.value[part * rows + v + 1]
                            shared.value[part * rows + v + 1] = slot
                            slot += count
                        }
                    }
                }
            }
            // Each range lists its pixels in order after the earlier ranges': pixel order.
            do {
                do {
                    do {
                        let weights = UncheckedSendable(weights)
                        let pixels = UncheckedSendable(gatherPixel), values = UncheckedSendable(gatherWeight)
                        Parallel.forEach(ranges) { part in
                            let cursor = shared.value + part * rows + 1
                            for i in (pixelCount * part / ranges)..<(pixelCount * (part + 1) / ranges) {
                                for r in 0..<D {
                                    let id = Int(ids.value[i * D + r])
                                    let slot = Int(cursor[id])
                                    pixels.value[slot] = Int32(i)
                                    values.value[slot] = weights.value[i * D + r]
                                    cursor[id] += 1
                                }
                            }
                        }
                    }
                }
            }
        }

        // 4.5: blur neighbours along each of the D directions, after every insertion.
        let neighbours = UnsafeMutablePointer<Int32>.allocate(capacity: D * (vertexCount + 1) * 2)
        for j in 0...d { (neighbours + j * (vertexCount + 1) * 2).initialize(repeating: 0, count: 2) }
        self.neighbours = neighbours
        let finder = UncheckedSendable(table)
        do {
            let out = UncheckedSendable(neighbours)
            Parallel.forRanges(vertexCount, minimumChunk: 512) { range in
                let plus = UnsafeMutablePointer<Int16>.allocate(capacity: d), minus = UnsafeMutablePointer<Int16>.allocate(capacity: d)
                defer { plus.deallocate(); minus.deallocate() }
                let table = finder.value
                for index in range {
                    let v = index + 1
                    let key = table.keys + v * d
                    for j in 0...d {
                        for m in 0..<d {
                            plus[m] = key[m] &- 1
                            minus[m] = key[m] &+ 1
                        }
                        if j < d {
                            plus[j] = key[j] &+ Int16(d)
                            minus[j] = key[j] &- Int16(d)
                        }
                        let slot = (j * (vertexCount + 1) + v) * 2
                        out.value[slot] = table.find(plus)
                        out.value[slot + 1] = table.find(minus)
                    }
                }
            }
        }
    }

    deinit {
        offsets.deallocate()
        weights.deallocate()
        contributionStart.deallocate()
        gatherPixel?.deallocate()
        gatherWeight?.deallocate()
        neighbours.deallocate()
    }

    /// Floats a filter call needs as scratch for `valuesPerPixel` values.
    public func workspaceCount(valuesPerPixel: Int) -> Int {
        (2 + (positionOnly ? 0 : Self.scatterChunks)) * (vertexCount + 1) * valuesPerPixel
    }

    /// A scattering splat runs as this many pixel ranges, each into a buffer of
    /// its own, added up in a fixed order afterwards: the same sums, in the
    /// same order, on any number of threads (up to this many at once).
    static let scatterChunks = 4

    /// Applies the lattice filter (splat, blur in directions 0...d, slice) to
    /// `input`, pixel-major [pixelCount][valuesPerPixel], writing `output` in
    /// the same layout (it may be `input`). `workspace` holds
    /// `workspaceCount(valuesPerPixel:)` floats. Rows of one or two values use
    /// densecrf's scalar routine's slice order; longer ones its SSE order, and
    /// run four lanes at a time when their length is a multiple of 4.
    public func filter(_ input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, valuesPerPixel n: Int,
                       workspace: UnsafeMutablePointer<Float>) {
        // The splat reads all of `input` before the first slice writes, so `output` may be `input`.
        let buffer = UncheckedSendable(splatAndBlur(input, scaledBy: nil, valuesPerPixel: n, workspace: workspace))
        let out = UncheckedSendable(output)
        Parallel.forRanges(pixelCount, minimumChunk: 256) { range in
            for i in range { slice(pixel: i, from: buffer.value, valuesPerPixel: n, into: out.value + i * n) }
        }
    }

    /// Vertex-id boundaries of `threads` splat shares with about equal contributions.
    private func splatShares(_ threads: Int) -> [Int] {
        let parts = min(threads, max(1, vertexCount / 256))
        let total = Int(contributionStart[vertexCount + 1])
        return (0...parts).map { part -> Int in
            if part == 0 { return 1 }
            if part == parts { return vertexCount + 1 }
            var low = 1, high = vertexCount + 1
            let goal = total * part / parts
            while low < high {
                let middle = (low + high) / 2
                if Int(contributionStart[middle]) < goal { low = middle + 1 } else { high = middle }
            }
            return low
        }
    }

    /// Splat and blur; returns the vertex buffer (inside `workspace`) to slice from.
    func splatAndBlur(_ input: UnsafePointer<Float>, scaledBy scale: UnsafePointer<Float>?, valuesPerPixel n: Int,
                      workspace: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let rows = vertexCount + 1
        let d = dimension, D = d + 1
        let offsets = UncheckedSendable(self.offsets), weights = UncheckedSendable(self.weights)
        var current = UncheckedSendable(workspace), next = UncheckedSendable(workspace + rows * n)
        // Splat: every vertex sums its pixels' weighted values in pixel order (see
        // `positionOnly` for the three ways), so the result is the same on any thread count.
        let buffer = current
        for l in 0..<n { buffer.value[l] = 0 }
        if positionOnly && (!gathers || Parallel.threadCount == 1) {
            buffer.value.update(repeating: 0, count: rows * n)
            for i in 0..<pixelCount {
                let value = input + i * n, s = scale?[i] ?? 1
                for r in 0..<D {
                    RowOperations.addWeighted(buffer.value + Int(offsets.value[i * D + r]) * n, weights.value[i * D + r], value, scale: s, count: n)
                }
            }
        } else if positionOnly, let gatherPixel, let gatherWeight {
            let bounds = splatShares(Parallel.threadCount)
            let start = UncheckedSendable(contributionStart), pixels = UncheckedSendable(gatherPixel), values = UncheckedSendable(gatherWeight)
            Parallel.forBalancedRanges(bounds.count - 1) { parts in
                for part in parts {
                    for v in bounds[part]..<bounds[part + 1] {
                        let row = buffer.value + v * n
                        for l in 0..<n { row[l] = 0 }
                        for c in Int(start.value[v])..<Int(start.value[v + 1]) {
                            let p = Int(pixels.value[c])
                            RowOperations.addWeighted(row, values.value[c], input + p * n, scale: scale?[p] ?? 1, count: n)
                        }
                    }
                }
            }
        } else {
            // Pixel ranges, each scattered in pixel order into its own buffer, then
            // summed range by range: fixed by the chunk count, never by the threads.
            let chunks = Self.scatterChunks, chunkSize = rows * n
            let partial = UncheckedSendable(workspace + 2 * chunkSize)
            let pixelCount = pixelCount
            Parallel.forBalancedRanges(chunks, rangesPerThread: chunks) { range in
                for chunk in range {
                    let target = partial.value + chunk * chunkSize
                    target.update(repeating: 0, count: chunkSize)
                    for i in (pixelCount * chunk / chunks)..<(pixelCount * (chunk + 1) / chunks) {
                        let value = input + i * n
                        let s = scale?[i] ?? 1
                        for r in 0..<D {
                            RowOperations.addWeighted(target + Int(offsets.value[i * D + r]) * n, weights.value[i * D + r], value, scale: s, count: n)
                        }
                    }
                }
            }
            Parallel.forRanges(vertexCount, minimumChunk: 256) { range in
                for index in range {
                    let v = index + 1
                    let row = buffer.value + v * n
                    for l in 0..<n { row[l] = partial.value[v * n + l] }
                    for chunk in 1..<chunks { RowOperations.addScaled(row, 1, partial.value + chunk * chunkSize + v * n, count: n) }
                }
            }
        }
        // Blur: [1/2, 1, 1/2] along each lattice direction in turn, absent neighbours 0.
        for j in 0...d {
            let source = current, target = next
            for l in 0..<n { target.value[l] = 0 }
            let table = UncheckedSendable(neighbours + j * rows * 2)
            Parallel.forRanges(vertexCount, minimumChunk: 256) { range in
                for index in range {
                    let v = index + 1
                    let old = source.value + v * n, new = target.value + v * n
                    let plus = source.value + Int(table.value[2 * v]) * n, minus = source.value + Int(table.value[2 * v + 1]) * n
                    RowOperations.blur(new, old, plus, minus, count: n)
                }
            }
            swap(&current, &next)
        }
        return current.value
    }

    /// Pixel `i`'s filtered values from the blurred vertex buffer: its
    /// simplex's vertices, weighted and scaled by alpha, summed from 0 in
    /// vertex order.
    @inline(__always)
    func slice(pixel i: Int, from buffer: UnsafePointer<Float>, valuesPerPixel n: Int, into target: UnsafeMutablePointer<Float>) {
        let D = dimension + 1
        for l in 0..<n { target[l] = 0 }
        for r in 0..<D {
            let row = buffer + Int(offsets[i * D + r]) * n
            let w = weights[i * D + r]
            if n <= 2 {
                // The C++ scalar routine's order, used for one or two values.
                for l in 0..<n { target[l] += (w * row[l]) * alpha }
            } else {
                RowOperations.addScaled(target, w * alpha, row, count: n)
            }
        }
    }
}

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
