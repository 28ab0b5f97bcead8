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
    /// Splats run as `chunkCount` fixed pixel ranges, taken by any number of
    /// threads. A position-only lattice (d <= 2) scatters every chunk straight
    /// into one buffer: chunk c writes the vertices it meets first (ids from
    /// `firstOwnedId[c]`: ids are numbered in pixel order, so those form one
    /// range) and keeps its contributions to earlier chunks' vertices in
    /// `deferredSlots[c]`, added after all chunks, chunk by chunk. Every vertex
    /// so sums its pixels in pixel order, as densecrf's one scatter does. The
    /// vertices of a bilateral lattice are met all over the image: each chunk
    /// scatters into a buffer of its own, and the buffers are added in a
    /// fixed order (within 1.1e-6 of densecrf; never dependent on the threads).
    static let chunkCount = 4
    let positionOnly: Bool
    /// chunkCount + 1 entries: chunk c owns ids firstOwnedId[c] ..< firstOwnedId[c + 1].
    let firstOwnedId: [Int32]
    /// Per chunk, the slots (pixel * D + r) that reach an earlier chunk's vertex, in pixel order.
    let deferredSlots: [[Int32]]
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

        // Chunk ownership (see `chunkCount`): the largest id each chunk meets.
        let chunks = Self.chunkCount
        positionOnly = d <= 2
        var largest = [Int32](repeating: 0, count: chunks)
        largest.withUnsafeMutableBufferPointer { largest in
            let largest = UncheckedSendable(largest.baseAddress!), ids = UncheckedSendable(UnsafePointer(offsets))
            Parallel.forEach(chunks) { c in
                var top: Int32 = 0
                for slot in (pixelCount * c / chunks * D)..<(pixelCount * (c + 1) / chunks * D) { top = max(top, ids.value[slot]) }
                largest.value[c] = top
            }
        }
        var owned = [Int32](repeating: 0, count: chunks + 1)
        var seen: Int32 = 0
        for c in 1..<chunks {
            seen = max(seen, largest[c - 1])
            owned[c] = seen + 1
        }
        owned[chunks] = Int32(vertexCount + 1)
        firstOwnedId = owned
        let ownedIds = owned
        var deferred = [[Int32]](repeating: [], count: chunks)
        if positionOnly {
            deferred.withUnsafeMutableBufferPointer { lists in
                let lists = UncheckedSendable(lists.baseAddress!), ids = UncheckedSendable(UnsafePointer(offsets))
                Parallel.forEach(chunks) { c in
                    var list: [Int32] = []
                    for slot in (pixelCount * c / chunks * D)..<(pixelCount * (c + 1) / chunks * D) where ids.value[slot] < ownedIds[c] {
                        list.append(Int32(slot))
                    }
                    lists.value[c] = list
                }
            }
        }
        deferredSlots = deferred

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
        neighbours.deallocate()
    }

    /// Floats a filter call needs as scratch for `valuesPerPixel` values: two
    /// vertex buffers (splat and blur take turns in them), and a bilateral
    /// lattice's one buffer per chunk.
    public func workspaceCount(valuesPerPixel: Int) -> Int {
        (2 + (positionOnly ? 0 : Self.chunkCount)) * (vertexCount + 1) * valuesPerPixel
    }
}
