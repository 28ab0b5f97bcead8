import Distributed
import Foundation
import Kernels

/// One clustering problem on this rank's slice of the (centred) points. The
/// per-point passes run on the rank's threads; sums over points are taken
/// per thread in Double and then added, then allreduced across ranks.
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
        var norms = [Float](repeating: 0, count: count)
        points.withUnsafeBufferPointer { x in
            norms.withUnsafeMutableBufferPointer { out in
                let x = UncheckedSendable(x), out = UncheckedSendable(out)
                Parallel.forEach(count, minimumChunk: 64) { i in
                    let row = x.value.baseAddress! + i * dimension
                    var sum: Float = 0
                    for j in 0..<dimension { sum += row[j] * row[j] }
                    out.value[i] = sum
                }
            }
        }
        self.norms = norms
    }

    /// Runs `body(points, partial)` over contiguous ranges of this rank's
    /// points, one range per thread, each accumulating into its own zeroed
    /// `width`-long Double buffer; returns the buffers' sum.
    func sumOverPoints(width: Int, _ body: (Range<Int>, UnsafeMutablePointer<Double>) -> Void) -> [Double] {
        let threads = max(1, min(Parallel.threadCount, count / 256))
        var partials = [Double](repeating: 0, count: threads * width)
        partials.withUnsafeMutableBufferPointer { buffer in
            let buffer = UncheckedSendable(buffer)
            Parallel.forEach(threads) { t in
                body((count * t / threads)..<(count * (t + 1) / threads), buffer.value.baseAddress! + t * width)
            }
        }
        guard threads > 1 else { return partials }
        var sum = [Double](repeating: 0, count: width)
        for t in 0..<threads { for w in 0..<width { sum[w] += partials[t * width + w] } }
        return sum
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
                    norms.withUnsafeBufferPointer { norms in
                        let out = UncheckedSendable(out), norms = UncheckedSendable(norms)
                        Parallel.forEach(count, minimumChunk: 256) { i in
                            let row = out.value.baseAddress! + i * rows
                            for r in 0..<rows { row[r] = max(0, row[r] + norms.value[i] + vectorNorms[r]) }
                        }
                    }
                }
            }
        }
        return result
    }

    /// The mean over dimensions of the population variance.
    func meanVariance() throws -> Double {
        var moments = [Double](repeating: 0, count: 2 * dimension)
        points.withUnsafeBufferPointer { x in
            for i in 0..<count {
                for j in 0..<dimension {
                    let value = Double(x[i * dimension + j])
                    moments[j] += value
                    moments[dimension + j] += value * value
                }
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

    /// Greedy k-means++ as scikit-learn's `_kmeans_plusplus`: the first centre
    /// by `choice`, then for each next centre 2 + ln(k) `uniform` draws scaled
    /// by the potential pick candidates on the cumulative squared distance,
    /// and the candidate that lowers the potential most is kept.
    func plusPlus(clusters: Int, random: inout NumPyRandomState) throws -> [Float] {
        let trials = 2 + Int(log(Double(clusters)))
        var centers = try point(global: random.uniformChoice(count: total))
        var closest = squaredDistances(to: centers, rows: 1).map(Double.init)
        var localSums = try communicator.allgather([closest.reduce(0, +)]).map { $0[0] }
        for _ in 1..<clusters {
            let potential = localSums.reduce(0, +)
            var candidates: [Float] = []
            let targets = (0..<trials).map { _ in random.randomSample() * potential }
            for target in targets {
                candidates += try point(global: try globalIndex(cumulative: target, localSums: localSums, closest: closest))
            }
            let toCandidates = squaredDistances(to: candidates, rows: trials)
            var potentials = closest.withUnsafeBufferPointer { closest in
                toCandidates.withUnsafeBufferPointer { distances in
                    sumOverPoints(width: trials) { range, partial in
                        for i in range {
                            for t in 0..<trials { partial[t] += min(closest[i], Double(distances[i * trials + t])) }
                        }
                    }
                }
            }
            try communicator.allreduceSum(&potentials)
            let bestTrial = potentials.indices.min { potentials[$0] < potentials[$1] }!
            for i in 0..<count { closest[i] = min(closest[i], Double(toCandidates[i * trials + bestTrial])) }
            localSums = try communicator.allgather([closest.reduce(0, +)]).map { $0[0] }
            centers += candidates[(bestTrial * dimension)..<((bestTrial + 1) * dimension)]
        }
        return centers
    }

    /// The first global index whose cumulative squared distance reaches
    /// `target` (numpy's searchsorted, side "left", on the cumulative sum,
    /// clipped to the last point).
    func globalIndex(cumulative target: Double, localSums: [Double], closest: [Double]) throws -> Int {
        var before = 0.0, owner = localSums.count - 1
        for (rank, sum) in localSums.enumerated() {
            if target <= before + sum && sum > 0 { owner = rank; break }
            if rank < localSums.count - 1 { before += sum }
        }
        var index: [Int64] = [Int64(total - 1)]
        if owner == communicator.rank {
            var running = before
            var found = count - 1
            for i in 0..<count {
                running += closest[i]
                if running >= target { found = i; break }
            }
            index[0] = Int64(firstIndex + max(0, found))
        }
        try communicator.broadcast(&index, root: owner)
        return Int(index[0])
    }

    /// Lloyd iterations from `centers`, with scikit-learn's stopping rules:
    /// labels unchanged, or a total squared centre shift within `threshold`;
    /// a run stopped by the shift rule gets a final assignment.
    func lloyd(centers start: [Float], clusters k: Int, maxIterations: Int, threshold: Double) throws -> KMeans.Result {
        var centers = start
        var labels = [Int32](repeating: -1, count: count)
        var iterations = 0
        var converged = false
        for iteration in 0..<maxIterations {
            iterations = iteration + 1
            var changed: [Int64] = [0]
            let distances = assign(centers: centers, clusters: k, labels: &labels, changed: &changed[0])
            // Sums and counts, then relocation of empty clusters, then the means.
            var sums = points.withUnsafeBufferPointer { x in
                labels.withUnsafeBufferPointer { labels in
                    sumOverPoints(width: k * dimension + k) { range, partial in
                        for i in range {
                            let c = Int(labels[i])
                            let row = x.baseAddress! + i * dimension, sum = partial + c * dimension
                            for j in 0..<dimension { sum[j] += Double(row[j]) }
                            partial[k * dimension + c] += 1
                        }
                    }
                }
            }
            try communicator.allreduceSum(&sums)
            try relocateEmpty(sums: &sums, clusters: k, labels: labels, distances: distances)
            var shift = 0.0
            for c in 0..<k where sums[k * dimension + c] > 0 {
                for j in 0..<dimension {
                    let value = Float(sums[c * dimension + j] / sums[k * dimension + c])
                    let delta = Double(value) - Double(centers[c * dimension + j])
                    shift += delta * delta
                    centers[c * dimension + j] = value
                }
            }
            try communicator.allreduceSum(&changed)
            if changed[0] == 0 { converged = true; break }
            if shift <= threshold { break }
        }
        if !converged {
            var changed: Int64 = 0
            _ = assign(centers: centers, clusters: k, labels: &labels, changed: &changed)
        }
        var stats = points.withUnsafeBufferPointer { x in
            labels.withUnsafeBufferPointer { labels in
                centers.withUnsafeBufferPointer { centers in
                    sumOverPoints(width: 1 + k) { range, partial in
                        for i in range {
                            let c = Int(labels[i])
                            let row = x.baseAddress! + i * dimension, center = centers.baseAddress! + c * dimension
                            var sum = 0.0
                            for j in 0..<dimension {
                                let difference = Double(row[j]) - Double(center[j])
                                sum += difference * difference
                            }
                            partial[0] += sum
                            partial[1 + c] += 1
                        }
                    }
                }
            }
        }
        try communicator.allreduceSum(&stats)
        return KMeans.Result(centers: centers, labels: labels, inertia: stats[0], iterations: iterations,
                             sizes: stats.dropFirst().map { Int($0) })
    }

    /// Nearest centre of every point (ties to the lower index); counts the
    /// labels that changed and returns each point's squared distance to its centre.
    func assign(centers: [Float], clusters k: Int, labels: inout [Int32], changed: inout Int64) -> [Double] {
        let all = squaredDistances(to: centers, rows: k)
        var distances = [Double](repeating: 0, count: count)
        var changes = [Int](repeating: 0, count: count)
        all.withUnsafeBufferPointer { all in
            labels.withUnsafeMutableBufferPointer { labels in
                distances.withUnsafeMutableBufferPointer { distances in
                    changes.withUnsafeMutableBufferPointer { changes in
                        let all = UncheckedSendable(all), labels = UncheckedSendable(labels)
                        let distances = UncheckedSendable(distances), changes = UncheckedSendable(changes)
                        Parallel.forEach(count, minimumChunk: 256) { i in
                            let row = all.value.baseAddress! + i * k
                            var best = Float.infinity, bestCluster: Int32 = 0
                            for c in 0..<k where row[c] < best {
                                best = row[c]
                                bestCluster = Int32(c)
                            }
                            changes.value[i] = labels.value[i] == bestCluster ? 0 : 1
                            labels.value[i] = bestCluster
                            distances.value[i] = Double(best)
                        }
                    }
                }
            }
        }
        changed = Int64(changes.reduce(0, +))
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

    /// Whether two labelings of all ranks' points are the same partition up
    /// to renumbering (scikit-learn's `_is_same_clustering`): every cluster of
    /// one meets exactly one cluster of the other, one to one.
    func isSamePartition(_ a: [Int32], _ b: [Int32], clusters k: Int) throws -> Bool {
        var table = [Int64](repeating: 0, count: k * k)
        for (x, y) in zip(a, b) { table[Int(x) * k + Int(y)] += 1 }
        try communicator.allreduceSum(&table)
        var partners = Set<Int>()
        for x in 0..<k {
            let met = (0..<k).filter { table[x * k + $0] > 0 }
            guard met.count <= 1 else { return false }
            if let y = met.first { guard partners.insert(y).inserted else { return false } }
        }
        return true
    }
}
