import Distributed
import Foundation
import Kernels

/// k-means as the reference library (scikit-learn) runs it, on points split
/// across ranks: greedy k-means++ seeding with 2 + ln(k) local trials, Lloyd
/// iterations until the labels stop changing or the centres move less than
/// `tolerance` times the mean per-dimension variance, empty clusters moved
/// to the points farthest from their centres, and `restarts` runs keeping the
/// lowest inertia. Each rank assigns its own points; per-cluster sums and
/// counts are allreduced, so every rank holds the same centres, and the
/// result depends on the number of ranks only through float summation order.
public enum KMeans {
    public struct Options: Sendable {
        public var clusters: Int
        public var restarts: Int = 10
        public var maxIterations: Int = 300
        public var tolerance: Double = 1e-4
        public var seed: UInt64 = 0

        public init(clusters: Int, restarts: Int = 10, maxIterations: Int = 300, tolerance: Double = 1e-4, seed: UInt64 = 0) {
            self.clusters = clusters
            self.restarts = restarts
            self.maxIterations = maxIterations
            self.tolerance = tolerance
            self.seed = seed
        }
    }

    public struct Result: Sendable {
        /// [clusters, dimension]
        public let centers: [Float]
        /// The cluster of each of this rank's points.
        public let labels: [Int32]
        public let inertia: Double
        public let iterations: Int
        /// Points per cluster, over all ranks.
        public let sizes: [Int]
    }

    public struct KMeansError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Clusters the points [count, dimension] this rank holds, which are the
    /// global points firstIndex ..< firstIndex + count.
    public static func fit(points: [Float], count: Int, dimension: Int, firstIndex: Int, options: Options,
                           communicator: Communicator) throws -> Result {
        precondition(points.count == count * dimension)
        var totals: [Int64] = [Int64(count)]
        try communicator.allreduceSum(&totals)
        let total = Int(totals[0])
        guard total >= options.clusters else {
            throw KMeansError(description: "\(total) points cannot form \(options.clusters) clusters")
        }
        guard points.allSatisfy(\.isFinite) else {
            throw KMeansError(description: "the features hold NaN or infinite values")
        }
        // Centre the data on its mean, as scikit-learn does: distances are
        // computed as ||x||² - 2x·c + ||c||², which loses precision to
        // cancellation when the points lie far from the origin.
        var mean = [Double](repeating: 0, count: dimension)
        for i in 0..<count { for j in 0..<dimension { mean[j] += Double(points[i * dimension + j]) } }
        try communicator.allreduceSum(&mean)
        let meanFloat = mean.map { Float($0 / Double(total)) }
        var centered = points
        for i in 0..<count { for j in 0..<dimension { centered[i * dimension + j] -= meanFloat[j] } }
        let starts = try communicator.allgather([Int64(firstIndex)]).map { Int($0[0]) }
        let problem = Problem(points: centered, count: count, dimension: dimension, firstIndex: firstIndex, total: total,
                              rankStarts: starts, communicator: communicator)
        let threshold = options.tolerance * (try problem.meanVariance())
        var best: Result? = nil
        for restart in 0..<options.restarts {
            let random = CounterRandom(seed: options.seed &+ UInt64(restart) &* 0x9E37_79B9)
            let seeds = try problem.plusPlus(clusters: options.clusters, random: random)
            let result = try problem.lloyd(centers: seeds, clusters: options.clusters, maxIterations: options.maxIterations,
                                           threshold: threshold)
            if best == nil || result.inertia < best!.inertia { best = result }
        }
        let result = best!
        var centers = result.centers
        for c in 0..<options.clusters { for j in 0..<dimension { centers[c * dimension + j] += meanFloat[j] } }
        return Result(centers: centers, labels: result.labels, inertia: result.inertia, iterations: result.iterations, sizes: result.sizes)
    }
}

/// One clustering problem on this rank's slice of the points.
struct Problem {
    let points: [Float]
    let count: Int
    let dimension: Int
    let firstIndex: Int
    let total: Int
    /// The first global point index of every rank's slice, gathered once.
    let rankStarts: [Int]
    let communicator: Communicator
    /// ||x||² of each point, for distances through a matrix product.
    let norms: [Float]

    init(points: [Float], count: Int, dimension: Int, firstIndex: Int, total: Int, rankStarts: [Int], communicator: Communicator) {
        self.points = points
        self.count = count
        self.dimension = dimension
        self.firstIndex = firstIndex
        self.total = total
        self.rankStarts = rankStarts
        self.communicator = communicator
        norms = (0..<count).map { i in
            var sum: Float = 0
            for j in 0..<dimension { sum += points[i * dimension + j] * points[i * dimension + j] }
            return sum
        }
    }

    /// Squared distances [count, rows] from every point to each of `rows`
    /// vectors ([rows, dimension]), as ||x||² - 2 x·c + ||c||² with one sgemm
    /// (clamped at 0 against rounding).
    func squaredDistances(to vectors: [Float], rows: Int) -> [Float] {
        var result = [Float](repeating: 0, count: count * rows)
        guard count > 0 else { return result }
        let vectorNorms = (0..<rows).map { r in (0..<dimension).reduce(Float(0)) { $0 + vectors[r * dimension + $1] * vectors[r * dimension + $1] } }
        points.withUnsafeBufferPointer { x in
            vectors.withUnsafeBufferPointer { c in
                result.withUnsafeMutableBufferPointer { out in
                    sgemm(transposeA: false, transposeB: true, m: count, n: rows, k: dimension, alpha: -2,
                          a: x.baseAddress!, lda: dimension, b: c.baseAddress!, ldb: dimension,
                          beta: 0, c: out.baseAddress!, ldc: rows)
                }
            }
        }
        for i in 0..<count {
            for r in 0..<rows { result[i * rows + r] = max(0, result[i * rows + r] + norms[i] + vectorNorms[r]) }
        }
        return result
    }

    /// The mean over dimensions of the population variance.
    func meanVariance() throws -> Double {
        var moments = [Double](repeating: 0, count: 2 * dimension)
        for i in 0..<count {
            for j in 0..<dimension {
                let x = Double(points[i * dimension + j])
                moments[j] += x
                moments[dimension + j] += x * x
            }
        }
        try communicator.allreduceSum(&moments)
        var sum = 0.0
        for j in 0..<dimension {
            let mean = moments[j] / Double(total)
            sum += max(0, moments[dimension + j] / Double(total) - mean * mean)
        }
        return sum / Double(dimension)
    }

    func squaredDistance(_ i: Int, _ center: ArraySlice<Float>) -> Double {
        var sum = 0.0
        var c = center.startIndex
        for j in 0..<dimension {
            let difference = Double(points[i * dimension + j]) - Double(center[c])
            sum += difference * difference
            c += 1
        }
        return sum
    }

    /// The point with global index `index`, broadcast from the rank holding it.
    func point(global index: Int) throws -> [Float] {
        let owner = ownerRank(of: index)
        var vector = [Float](repeating: 0, count: dimension)
        if owner == communicator.rank {
            let local = index - firstIndex
            vector = Array(points[(local * dimension)..<((local + 1) * dimension)])
        }
        try communicator.broadcast(&vector, root: owner)
        return vector
    }

    /// The last rank whose slice starts at or before `index` (empty slices share a start).
    func ownerRank(of index: Int) -> Int { rankStarts.lastIndex { $0 <= index } ?? 0 }

    /// Greedy k-means++: the first centre uniformly at random, then for each
    /// next centre 2 + ln(k) candidates drawn with probability proportional to
    /// the squared distance, keeping the one that lowers the potential most.
    func plusPlus(clusters: Int, random: CounterRandom) throws -> [Float] {
        let trials = 2 + Int(log(Double(clusters)))
        var centers: [Float] = []
        let first = min(total - 1, Int(random.uniform(0, 0, 0, 0) * Double(total)))
        centers += try point(global: first)
        var closest = squaredDistances(to: centers, rows: 1).map(Double.init)
        var localSums = try communicator.allgather([closest.reduce(0, +)]).map { $0[0] }
        for c in 1..<clusters {
            let potential = localSums.reduce(0, +)
            // Candidate positions on the global cumulative distance.
            var candidates: [[Float]] = []
            for t in 0..<trials {
                let target = random.uniform(1, UInt64(c), UInt64(t), 0) * potential
                candidates.append(try point(global: try globalIndex(cumulative: target, localSums: localSums, closest: closest)))
            }
            let toCandidates = squaredDistances(to: candidates.flatMap { $0 }, rows: trials)
            var potentials = [Double](repeating: 0, count: trials)
            for i in 0..<count {
                for t in 0..<trials { potentials[t] += min(closest[i], Double(toCandidates[i * trials + t])) }
            }
            try communicator.allreduceSum(&potentials)
            let bestTrial = potentials.indices.min { potentials[$0] < potentials[$1] }!
            let chosen = candidates[bestTrial]
            for i in 0..<count { closest[i] = min(closest[i], Double(toCandidates[i * trials + bestTrial])) }
            localSums = try communicator.allgather([closest.reduce(0, +)]).map { $0[0] }
            centers += chosen
        }
        return centers
    }

    /// The global index whose cumulative squared distance first exceeds `target`
    /// (numpy's searchsorted on the cumulative sum, clipped to the last point).
    func globalIndex(cumulative target: Double, localSums: [Double], closest: [Double]) throws -> Int {
        var before = 0.0, owner = localSums.count - 1
        for (rank, sum) in localSums.enumerated() {
            if target < before + sum { owner = rank; break }
            if rank < localSums.count - 1 { before += sum }
        }
        var index: [Int64] = [Int64(total - 1)]
        if owner == communicator.rank {
            var running = before
            var found = count - 1
            for i in 0..<count {
                running += closest[i]
                if running > target { found = i; break }
            }
            index[0] = Int64(firstIndex + max(0, found))
        }
        try communicator.broadcast(&index, root: owner)
        return Int(index[0])
    }

    /// Lloyd iterations from `centers`, with scikit-learn's stopping rules.
    func lloyd(centers start: [Float], clusters k: Int, maxIterations: Int, threshold: Double) throws -> KMeans.Result {
        var centers = start
        var labels = [Int32](repeating: -1, count: count)
        var iterations = 0
        var converged = false
        for iteration in 0..<maxIterations {
            iterations = iteration + 1
            let previous = labels
            let distances = assign(centers: centers, clusters: k, labels: &labels)
            // Sums and counts, then relocation of empty clusters, then the means.
            var sums = [Double](repeating: 0, count: k * dimension + k)
            for i in 0..<count {
                let c = Int(labels[i])
                for j in 0..<dimension { sums[c * dimension + j] += Double(points[i * dimension + j]) }
                sums[k * dimension + c] += 1
            }
            try communicator.allreduceSum(&sums)
            try relocateEmpty(sums: &sums, clusters: k, labels: labels, distances: distances)
            var shift = 0.0
            var updated = centers
            for c in 0..<k where sums[k * dimension + c] > 0 {
                for j in 0..<dimension {
                    let value = Float(sums[c * dimension + j] / sums[k * dimension + c])
                    let delta = Double(value) - Double(centers[c * dimension + j])
                    shift += delta * delta
                    updated[c * dimension + j] = value
                }
            }
            centers = updated
            var changed: [Int64] = [Int64(zip(labels, previous).filter { $0 != $1 }.count)]
            try communicator.allreduceSum(&changed)
            if changed[0] == 0 { converged = true; break }
            if shift <= threshold { break }
        }
        if !converged { _ = assign(centers: centers, clusters: k, labels: &labels) }
        var stats = [Double](repeating: 0, count: 1 + k)
        for i in 0..<count {
            let c = Int(labels[i])
            stats[0] += squaredDistance(i, centers[(c * dimension)..<((c + 1) * dimension)])
            stats[1 + c] += 1
        }
        try communicator.allreduceSum(&stats)
        return KMeans.Result(centers: centers, labels: labels, inertia: stats[0], iterations: iterations,
                             sizes: stats.dropFirst().map { Int($0) })
    }

    /// Nearest centre of every point (ties to the lower index); returns the
    /// squared distance of each point to its centre.
    func assign(centers: [Float], clusters k: Int, labels: inout [Int32]) -> [Double] {
        let all = squaredDistances(to: centers, rows: k)
        var distances = [Double](repeating: 0, count: count)
        for i in 0..<count {
            var best = Float.infinity, bestCluster = 0
            for c in 0..<k where all[i * k + c] < best {
                best = all[i * k + c]
                bestCluster = c
            }
            labels[i] = Int32(bestCluster)
            distances[i] = Double(best)
        }
        return distances
    }

    /// scikit-learn's rule: each empty cluster takes the point farthest from
    /// its centre (largest first), moving it out of its old cluster's sums.
    func relocateEmpty(sums: inout [Double], clusters k: Int, labels: [Int32], distances: [Double]) throws {
        let empty = (0..<k).filter { sums[k * dimension + $0] == 0 }
        guard !empty.isEmpty else { return }
        // Every rank offers its farthest points; all ranks pick the same global ones.
        let mine = distances.indices.sorted { distances[$0] > distances[$1] || (distances[$0] == distances[$1] && $0 < $1) }
            .prefix(empty.count).flatMap { [distances[$0], Double(firstIndex + $0), Double(labels[$0])] }
        let offers = try communicator.allgather(mine).flatMap { offer in stride(from: 0, to: offer.count, by: 3).map { (offer[$0], Int(offer[$0 + 1]), Int(offer[$0 + 2])) } }
        let chosen = offers.sorted { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }.prefix(empty.count)
        for (cluster, (_, index, old)) in zip(empty, chosen) {
            let vector = try point(global: index)
            for j in 0..<dimension {
                sums[old * dimension + j] -= Double(vector[j])
                sums[cluster * dimension + j] = Double(vector[j])
            }
            sums[k * dimension + old] -= 1
            sums[k * dimension + cluster] = 1
        }
    }
}
