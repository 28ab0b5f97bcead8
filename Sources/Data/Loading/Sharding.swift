import Kernels

/// Who processes what, so that every image is processed exactly once.
public enum Sharding {
    /// The contiguous part of `count` items that `rank` of `size` takes
    /// (extraction, inference): sizes differ by at most one.
    public static func contiguousRange(count: Int, rank: Int, size: Int) -> Range<Int> {
        (count * rank / size)..<(count * (rank + 1) / size)
    }

    /// This rank's slice of one global batch: the batch is split into `size`
    /// equal contiguous parts (the batch must divide evenly; training checks).
    public static func batchSlice(_ batch: [Int], rank: Int, size: Int) -> ArraySlice<Int> {
        precondition(batch.count % size == 0, "a global batch of \(batch.count) does not split over \(size) ranks")
        let part = batch.count / size
        return batch[(rank * part)..<((rank + 1) * part)]
    }
}

/// The reference's training order: each epoch a fresh random permutation of
/// the data set, cut into global batches, the last partial batch dropped.
/// A pure function of (seed, epoch), identical on every rank.
public struct EpochSchedule: Sendable {
    public let count: Int
    public let batchSize: Int
    public let seed: UInt64

    public init(count: Int, batchSize: Int, seed: UInt64) {
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
    }

    public var batchesPerEpoch: Int { count / batchSize }

    /// Data set indices in this epoch's order.
    public func permutation(epoch: Int) -> [Int] {
        var order = Array(0..<count)
        let random = CounterRandom(seed: seed)
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(random.uniform(0x5045_524D, UInt64(epoch), UInt64(i), 0) * Double(i + 1))
            order.swapAt(i, min(j, i))
        }
        return order
    }

    /// Global batch `index` of `epoch`: data set indices, with their global
    /// sample numbers (position in the epoch), which key the augmentation.
    public func batch(_ index: Int, epoch: Int, order: [Int]) -> [(sample: Int, item: Int)] {
        let start = index * batchSize
        return (start..<(start + batchSize)).map { ($0, order[$0]) }
    }
}
