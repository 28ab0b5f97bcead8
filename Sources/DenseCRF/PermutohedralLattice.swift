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
    let offsets: [Int32]
    let weights: [Float]
    /// Per vertex, how many pixel contributions it receives, as prefix sums.
    let contributionStart: [Int32]
    /// Position-only lattices (d <= 2) sum each vertex in pixel order: on one
    /// thread by scattering pixel after pixel, as densecrf does; on several by
    /// gathering (a vertex's pixels are neighbours in the image, so its list
    /// reads nearby rows), with lists built only when the lattice is made on
    /// more than one thread. The pixels of a bilateral vertex lie all over
    /// the image: those lattices scatter in fixed pixel ranges instead.
    let positionOnly: Bool
    let gathers: Bool
    /// The gather lists: each vertex's contributing pixels, in pixel order.
    let gatherPixel: [Int32]
    let gatherWeight: [Float]
    /// Per blur direction j and vertex v: the two neighbours, 0 when absent.
    let neighbours: [Int32]  // [D][vertexCount + 1][2]
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
        let parts = min(Parallel.threadCount, max(1, pixelCount / 8192))
        let tables = (0..<parts).map { _ in VertexTable(dimension: d, expectedCount: pixelCount * D / (4 * parts) + 16) }
        var weights = [Float](repeating: 0, count: pixelCount * D)
        var offsets = [Int32](repeating: 0, count: pixelCount * D)
        weights.withUnsafeMutableBufferPointer { barycentric in
            offsets.withUnsafeMutableBufferPointer { ids in
                let barycentric = UncheckedSendable(barycentric.baseAddress!), ids = UncheckedSendable(ids.baseAddress!)
                let simplexKeys = D * d
                Parallel.forEach(parts) { part in
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
        guard parts > 1 else { return }
                let table = tables[0]
                let maps = (1..<parts).map { part -> [Int32] in
                    var map = [Int32](repeating: 0, count: tables[part].count + 1)
                    for local in stride(from: 1, through: tables[part].count, by: 1) {
                        map[local] = table.insert(tables[part].keys + local * d)
                    }
                    return map
                }
                Parallel.forEach(parts - 1) { index in
                    let part = index + 1, ids = ids.value
                    maps[index].withUnsafeBufferPointer { map in
                        for slot in (pixelCount * part / parts * D)..<(pixelCount * (part + 1) / parts * D) {
                            ids[slot] = map[Int(ids[slot])]
                        }
                    }
                }
            }
        }
        self.weights = weights
        let table = tables[0]
        if pixelCount % 4 != 0 {
            var origin = [Int16](repeating: 0, count: d)
            for r in 0...d {
                for m in 0..<d { origin[m] = Int16(m <= d - r ? r : r - D) }
                _ = origin.withUnsafeBufferPointer { table.insert($0.baseAddress!) }
            }
        }
        self.offsets = offsets
        let vertexCount = table.count
        self.vertexCount = vertexCount

        // Contributions per vertex (prefix sums), to share the splat out evenly.
        var start = [Int32](repeating: 0, count: vertexCount + 2)
        start.withUnsafeMutableBufferPointer { start in
            offsets.withUnsafeBufferPointer { ids in
                for id in ids { start[Int(id) + 1] += 1 }
            }
            for v in 1..<start.count { start[v] += start[v - 1] }
        }
        contributionStart = start
        positionOnly = d <= 2
        gathers = positionOnly && Parallel.threadCount > 1
        var gatherPixel = [Int32](repeating: 0, count: gathers ? pixelCount * D : 0)
        var gatherWeight = [Float](repeating: 0, count: gathers ? pixelCount * D : 0)
        if gathers {
            // A counting sort of (pixel, r) by vertex that keeps pixel order.
            offsets.withUnsafeBufferPointer { ids in
                weights.withUnsafeBufferPointer { weights in
                    gatherPixel.withUnsafeMutableBufferPointer { pixels in
                        gatherWeight.withUnsafeMutableBufferPointer { values in
                            let cursor = UnsafeMutablePointer<Int32>.allocate(capacity: start.count)
                            defer { cursor.deallocate() }
                            cursor.initialize(from: start, count: start.count)
                            for i in 0..<pixelCount {
                                for r in 0..<D {
                                    let id = Int(ids[i * D + r])
                                    let slot = Int(cursor[id])
                                    pixels[slot] = Int32(i)
                                    values[slot] = weights[i * D + r]
                                    cursor[id] += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        self.gatherPixel = gatherPixel
        self.gatherWeight = gatherWeight

        // 4.5: blur neighbours along each of the D directions, after every insertion.
        var neighbours = [Int32](repeating: 0, count: D * (vertexCount + 1) * 2)
        let finder = UncheckedSendable(table)
        neighbours.withUnsafeMutableBufferPointer { out in
            let out = UncheckedSendable(out.baseAddress!)
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
        self.neighbours = neighbours
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
        let d = dimension
        var current = UncheckedSendable(workspace), next = UncheckedSendable(workspace + rows * n)
        // Splat: every vertex sums its pixels' weighted values in pixel order (see
        // `positionOnly` for the three ways), so the result is the same on any thread count.
        let bounds = splatShares(Parallel.threadCount)
        let buffer = current
        for l in 0..<n { buffer.value[l] = 0 }
        if positionOnly && (!gathers || Parallel.threadCount == 1) {
            buffer.value.update(repeating: 0, count: rows * n)
            offsets.withUnsafeBufferPointer { offsets in
                weights.withUnsafeBufferPointer { weights in
                    let D = d + 1
                    for i in 0..<pixelCount {
                        let value = input + i * n, s = scale?[i] ?? 1
                        for r in 0..<D {
                            RowOperations.addWeighted(buffer.value + Int(offsets[i * D + r]) * n, weights[i * D + r], value, scale: s, count: n)
                        }
                    }
                }
            }
        } else if positionOnly {
            contributionStart.withUnsafeBufferPointer { start in
                gatherPixel.withUnsafeBufferPointer { pixels in
                    gatherWeight.withUnsafeBufferPointer { weights in
                        Parallel.forEach(bounds.count - 1) { part in
                            for v in bounds[part]..<bounds[part + 1] {
                                let row = buffer.value + v * n
                                for l in 0..<n { row[l] = 0 }
                                for c in Int(start[v])..<Int(start[v + 1]) {
                                    let p = Int(pixels[c])
                                    RowOperations.addWeighted(row, weights[c], input + p * n, scale: scale?[p] ?? 1, count: n)
                                }
                            }
                        }
                    }
                }
            }
        } else {
            // Pixel ranges, each scattered in pixel order into its own buffer, then
            // summed range by range: fixed by the chunk count, never by the threads.
            let chunks = Self.scatterChunks, chunkSize = rows * n
            let partial = UncheckedSendable(workspace + 2 * chunkSize)
            offsets.withUnsafeBufferPointer { offsets in
                weights.withUnsafeBufferPointer { weights in
                    let D = d + 1
                    Parallel.forEach(chunks) { chunk in
                        let target = partial.value + chunk * chunkSize
                        target.update(repeating: 0, count: chunkSize)
                        for i in (pixelCount * chunk / chunks)..<(pixelCount * (chunk + 1) / chunks) {
                            let value = input + i * n
                            let s = scale?[i] ?? 1
                            for r in 0..<D {
                                RowOperations.addWeighted(target + Int(offsets[i * D + r]) * n, weights[i * D + r], value, scale: s, count: n)
                            }
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
        neighbours.withUnsafeBufferPointer { neighbours in
            for j in 0...d {
                let source = current, target = next
                for l in 0..<n { target.value[l] = 0 }
                let table = neighbours.baseAddress! + j * rows * 2
                Parallel.forRanges(vertexCount, minimumChunk: 256) { range in
                    for index in range {
                        let v = index + 1
                        let old = source.value + v * n, new = target.value + v * n
                        let plus = source.value + Int(table[2 * v]) * n, minus = source.value + Int(table[2 * v + 1]) * n
                        RowOperations.blur(new, old, plus, minus, count: n)
                    }
                }
                swap(&current, &next)
            }
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
        offsets.withUnsafeBufferPointer { offsets in
            weights.withUnsafeBufferPointer { weights in
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
