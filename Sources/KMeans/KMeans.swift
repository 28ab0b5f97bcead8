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
///
/// The random draws are NumPy's `RandomState(seed)` consumed as
/// scikit-learn ≥ 1.3 consumes it (one stream across the restarts, the
/// first centre by `choice`, the candidates by `uniform`), so a seed lands
/// on the same local optimum as the reference library with that seed.
public enum KMeans {
    public struct Options: Sendable {
        public var clusters: Int
        public var restarts: Int = 10
        public var maxIterations: Int = 300
        public var tolerance: Double = 1e-4
        /// NumPy's seeds are 32-bit: 0 ..< 2³².
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
        guard let seed = UInt32(exactly: options.seed) else {
            throw KMeansError(description: "seed \(options.seed) is out of range: NumPy's RandomState takes 0 ... \(UInt32.max)")
        }
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
        points.withUnsafeBufferPointer { x in
            for i in 0..<count { for j in 0..<dimension { mean[j] += Double(x[i * dimension + j]) } }
        }
        try communicator.allreduceSum(&mean)
        let meanFloat = mean.map { Float($0 / Double(total)) }
        var centered = points
        centered.withUnsafeMutableBufferPointer { x in
            for i in 0..<count { for j in 0..<dimension { x[i * dimension + j] -= meanFloat[j] } }
        }
        let starts = try communicator.allgather([Int64(firstIndex)]).map { Int($0[0]) }
        let problem = Problem(points: centered, count: count, dimension: dimension, firstIndex: firstIndex, total: total,
                              rankStarts: starts, communicator: communicator)
        let threshold = options.tolerance * (try problem.meanVariance())
        var random = NumPyRandomState(seed: seed)
        var best: Result? = nil
        for _ in 0..<options.restarts {
            let seeds = try problem.plusPlus(clusters: options.clusters, random: &random)
            let result = try problem.lloyd(centers: seeds, clusters: options.clusters, maxIterations: options.maxIterations,
                                           threshold: threshold)
            // scikit-learn keeps a lower inertia only when it is a different
            // partition: the same one can differ in the last bits.
            if best == nil {
                best = result
            } else if result.inertia < best!.inertia,
                      try !problem.isSamePartition(result.labels, best!.labels, clusters: options.clusters) {
                best = result
            }
        }
        let result = best!
        var centers = result.centers
        for c in 0..<options.clusters { for j in 0..<dimension { centers[c * dimension + j] += meanFloat[j] } }
        return Result(centers: centers, labels: result.labels, inertia: result.inertia, iterations: result.iterations, sizes: result.sizes)
    }
}
