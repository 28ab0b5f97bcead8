import Foundation
import Workflow
import Kernels
import Network

/// psa's random walk (`infer_aff.py`, spec 9.4): CAM scores on the stride-8
/// grid of an image, propagated by T^(2^logt), where T is the column-normalised
/// element-wise power of the pair affinities of AffinityNet.
///
/// psa forms T densely and squares it logt times (8 products of n x n
/// matrices, ~415 GFLOP for a VOC image). T has only the diagonal and the
/// radius-5 pairs in each column, so `walk` applies it 2^logt times to the
/// 21 x n score matrix instead: the same vector (6.5e-14 relative in float64,
/// the golden README measured), in float64, at a tiny fraction of the work.
/// `walkDense` is psa's way, in float32 BLAS, for comparison and benchmarks.
public enum RandomWalk {
    public struct Parameters: Sendable, Equatable, Codable {
        /// The background score's exponent, (1 - max CAM)^alpha.
        public var alpha: Double = 16
        /// The element-wise power of the affinities.
        public var beta: Double = 8
        /// The walk length is 2^logT.
        public var logT: Int = 8
        /// The pairs whose affinities make T: psa's, or every pair of the grid.
        public var pairs: PairGeometry.Coverage = .psa
        public init(alpha: Double = 16, beta: Double = 8, logT: Int = 8, pairs: PairGeometry.Coverage = .psa) {
            self.alpha = alpha
            self.beta = beta
            self.logT = logT
            self.pairs = pairs
        }

        // A run.json written before `pairs` existed means psa's pairs.
        public init(from decoder: Decoder) throws {
            let values = try decoder.container(keyedBy: CodingKeys.self)
            alpha = try values.decode(Double.self, forKey: .alpha)
            beta = try values.decode(Double.self, forKey: .beta)
            logT = try values.decode(Int.self, forKey: .logT)
            pairs = try values.decodeIfPresent(PairGeometry.Coverage.self, forKey: .pairs) ?? .psa
        }
    }

    /// The stride-8 grid of an image and its zero-padded size (multiples of 8).
    public struct Geometry: Sendable, Equatable {
        public let height: Int, width: Int
        public var gridHeight: Int { (height + 7) / 8 }
        public var gridWidth: Int { (width + 7) / 8 }
        public var paddedHeight: Int { gridHeight * 8 }
        public var paddedWidth: Int { gridWidth * 8 }
        public var cells: Int { gridHeight * gridWidth }
        /// The pairs of the grid.
        public func pairs(_ coverage: PairGeometry.Coverage = .psa) -> PairGeometry {
            PairGeometry(height: gridHeight, width: gridWidth, coverage: coverage)
        }
        public init(height: Int, width: Int) {
            self.height = height
            self.width = width
        }
    }

    /// The 1 + classCount score channels on the grid (VOC: 21), [channels][cells]: channel 0 is
    /// (1 - max over classes of the CAM)^alpha, channel c + 1 the CAM of class
    /// c (zero for absent classes), zero-padded on the right and bottom and
    /// averaged over 8 x 8 blocks. `cams` is [classes.count][H][W].
    public static func pooledScores(cams: [Float], classes: [Int], geometry g: Geometry, alpha: Double,
                                    classCount: Int = 20) -> [Double] {
        let plane = g.height * g.width
        precondition(cams.count == classes.count * plane, "CAMs must be [\(classes.count), \(g.height), \(g.width)]")
        let channels = classCount + 1
        var pooled = [Double](repeating: 0, count: channels * g.cells)
        for y in 0..<g.height {
            for x in 0..<g.width {
                let i = y * g.width + x
                var largest = 0.0
                for k in classes.indices { largest = max(largest, Double(cams[k * plane + i])) }
                let cell = (y / 8) * g.gridWidth + x / 8
                pooled[cell] += pow(1 - largest, alpha)
                for (k, c) in classes.enumerated() { pooled[(c + 1) * g.cells + cell] += Double(cams[k * plane + i]) }
            }
        }
        for i in pooled.indices { pooled[i] /= 64 }
        return pooled
    }

    /// T in compressed columns: column j holds T[i][j] for its rows i, in
    /// increasing order (the diagonal and every pair that touches cell j).
    public struct Transition: Sendable {
        public let cells: Int
        public let columnStart: [Int]
        public let rows: [Int32]
        public let values: [Double]

        /// Entries per column, on average.
        public var meanColumnCount: Double { Double(rows.count) / Double(max(1, cells)) }
    }

    /// T = A^beta element-wise, each column divided by its sum, where
    /// A[from][to] = A[to][from] = the affinity of a pair and A[i][i] = 1.
    /// `affinities` is AffinityNet's [34][pairs] for the pairs of `pairs`
    /// (pairs without a target are left out).
    public static func transition(affinities: [Float], pairs: PairGeometry, beta: Double) -> Transition {
        precondition(affinities.count == pairs.pairCount,
                     "affinities must be [34, \(pairs.pairsPerDisplacement)] for a \(pairs.height)x\(pairs.width) grid")
        let n = pairs.height * pairs.width, p = pairs.pairsPerDisplacement
        // Per column, (row, value): the diagonal, then both directions of every pair.
        var entries = [[(Int32, Double)]](repeating: [], count: n)
        for j in 0..<n { entries[j].append((Int32(j), 1)) }
        for d in PairGeometry.displacements.indices {
            for (k, from) in pairs.from.enumerated() {
                let to = pairs.to(d, k)
                guard to >= 0 else { continue }
                let a = pow(Double(affinities[d * p + k]), beta)
                entries[to].append((Int32(from), a))
                entries[from].append((Int32(to), a))
            }
        }
        var columnStart = [0], rows: [Int32] = [], values: [Double] = []
        for j in 0..<n {
            let column = entries[j].sorted { $0.0 < $1.0 }
            let sum = column.reduce(0) { $0 + $1.1 }
            for (row, value) in column {
                rows.append(row)
                values.append(value / sum)
            }
            columnStart.append(rows.count)
        }
        return Transition(cells: n, columnStart: columnStart, rows: rows, values: values)
    }

    /// scores [channels][cells] times T, 2^logT times over: column j of the
    /// result only reads the rows of T's column j. Inside, the scores are
    /// cell-major with the channels padded to a multiple of 4, so each entry
    /// of T scales one contiguous row of channels (vector lanes).
    public static func walk(_ scores: [Double], channels: Int, transition t: Transition, logT: Int) -> [Double] {
        let n = t.cells, stride = (channels + 3) / 4 * 4
        precondition(scores.count == channels * n)
        var current = [Double](repeating: 0, count: n * stride), next = current
        for c in 0..<channels {
            for j in 0..<n { current[j * stride + c] = scores[c * n + j] }
        }
        t.columnStart.withUnsafeBufferPointer { start in
            t.rows.withUnsafeBufferPointer { rows in
                t.values.withUnsafeBufferPointer { values in
                    let start = UncheckedSendable(start.baseAddress!), rows = UncheckedSendable(rows.baseAddress!)
                    let values = UncheckedSendable(values.baseAddress!)
                    for _ in 0..<(1 << logT) {
                        current.withUnsafeBufferPointer { source in
                            next.withUnsafeMutableBufferPointer { target in
                                let source = UncheckedSendable(source.baseAddress!), target = UncheckedSendable(target.baseAddress!)
                                Parallel.forRanges(n, minimumChunk: 64) { columns in
                                    for j in columns {
                                        let out = target.value + j * stride
                                        for lane in Swift.stride(from: 0, to: stride, by: 4) {
                                            var sum = SIMD4<Double>(repeating: 0)
                                            for e in start.value[j]..<start.value[j + 1] {
                                                let row = source.value + Int(rows.value[e]) * stride + lane
                                                sum += SIMD4(row[0], row[1], row[2], row[3]) * values.value[e]
                                            }
                                            out[lane] = sum[0]
                                            out[lane + 1] = sum[1]
                                            out[lane + 2] = sum[2]
                                            out[lane + 3] = sum[3]
                                        }
                                    }
                                }
                            }
                        }
                        swap(&current, &next)
                    }
                }
            }
        }
        var result = [Double](repeating: 0, count: channels * n)
        for c in 0..<channels {
            for j in 0..<n { result[c * n + j] = current[j * stride + c] }
        }
        return result
    }

    /// psa's way: T as a dense n x n float32 matrix, squared logT times, then
    /// scores x T. For benchmarks and cross-checks; `walk` gives the same.
    public static func walkDense(_ scores: [Double], channels: Int, transition t: Transition, logT: Int) -> [Float] {
        let n = t.cells
        var matrix = [Float](repeating: 0, count: n * n), product = matrix
        for j in 0..<n {
            for e in t.columnStart[j]..<t.columnStart[j + 1] { matrix[Int(t.rows[e]) * n + j] = Float(t.values[e]) }
        }
        for _ in 0..<logT {
            matrix.withUnsafeBufferPointer { m in
                product.withUnsafeMutableBufferPointer { p in
                    sgemm(transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1, a: m.baseAddress!, lda: n,
                          b: m.baseAddress!, ldb: n, beta: 0, c: p.baseAddress!, ldc: n)
                }
            }
            swap(&matrix, &product)
        }
        let vector = scores.map(Float.init)
        var result = [Float](repeating: 0, count: channels * n)
        vector.withUnsafeBufferPointer { v in
            matrix.withUnsafeBufferPointer { m in
                result.withUnsafeMutableBufferPointer { r in
                    sgemm(transposeA: false, transposeB: false, m: channels, n: n, k: n, alpha: 1, a: v.baseAddress!, lda: n,
                          b: m.baseAddress!, ldb: n, beta: 0, c: r.baseAddress!, ldc: n)
                }
            }
        }
        return result
    }

    /// The label of every pixel: the walked scores upsampled (bilinear,
    /// half-pixel centres) to the padded size, argmax over the channels (the
    /// first of equal maxima), cropped to the image. 0 = background, c + 1 = class c.
    public static func labels(walked: [Double], channels: Int, geometry g: Geometry) -> [UInt8] {
        precondition(walked.count == channels * g.cells)
        let grid = walked.map(Float.init)
        var upsampled = [Float](repeating: 0, count: channels * g.paddedHeight * g.paddedWidth)
        grid.withUnsafeBufferPointer { source in
            upsampled.withUnsafeMutableBufferPointer { target in
                BilinearResize.resize(source.baseAddress!, planes: channels, height: g.gridHeight, width: g.gridWidth,
                                      output: target.baseAddress!, newHeight: g.paddedHeight, newWidth: g.paddedWidth)
            }
        }
        let plane = g.paddedHeight * g.paddedWidth
        var labels = [UInt8](repeating: 0, count: g.height * g.width)
        for y in 0..<g.height {
            for x in 0..<g.width {
                let i = y * g.paddedWidth + x
                var best = 0, value = upsampled[i]
                for c in 1..<channels where upsampled[c * plane + i] > value {
                    best = c
                    value = upsampled[c * plane + i]
                }
                labels[y * g.width + x] = UInt8(best)
            }
        }
        return labels
    }
}
