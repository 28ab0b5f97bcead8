import Foundation

/// How gradients travel between ranks.
public enum GradientWireFormat: String, CaseIterable, Codable, Sendable {
    /// float32 on the wire: the sum MPI computes, equal across rank counts up
    /// to the order of the float32 additions.
    case fp32
    /// bfloat16 on the wire, sums in float32: half the bytes. Each rank's
    /// contribution and each sum are rounded to bfloat16 once (a relative error
    /// of at most 2^-8 each), so a run no longer equals a 1-rank run to 1e-5.
    case bf16
}

/// How the exchange's thread waits for a collective to finish.
public enum ExchangeProgress: String, CaseIterable, Codable, Sendable {
    /// Non-blocking collectives, tested about 20 times over the time the last
    /// ones took (every 10 us to 1 ms) with the thread asleep in between: the
    /// data moves in the kernel (TCP) or in single copies (shared memory), and
    /// the core stays with the computation.
    case polled
    /// Blocking `MPI_Allreduce`, the library's own algorithm. Open MPI spins
    /// inside it, so on a core shared with compute it takes half the core for
    /// as long as the transfer lasts (at 1 Gbit/s: seconds per step).
    case blocking
}

/// Sums one bucket of float32 values over every rank of `communicator`, in
/// place, in the chosen wire format. Every rank ends with the same values.
public final class BucketReduction {
    public let communicator: Communicator
    public let wireFormat: GradientWireFormat
    public let progress: ExchangeProgress
    /// A fixed interval between tests; nil adapts it to the collectives' duration.
    public let pollMicroseconds: Int?
    /// The recent collectives' duration (a moving average), which sets the adaptive interval.
    private var typicalSeconds = 0.0
    static let testsPerCollective = 20.0
    static let pollBounds = 10...1000
    /// The float32 sum, out of place (Open MPI's non-blocking ring needs it).
    private let sums: UnsafeMutableBufferPointer<Float>
    /// The bucket in bfloat16: what this rank sends, then what every rank receives.
    private let wire: UnsafeMutableBufferPointer<UInt16>
    /// Every rank's bfloat16 copy of this rank's block, rank after rank.
    private let owned: UnsafeMutableBufferPointer<UInt16>

    /// `maxFloats` bounds the buckets `reduce` is given (scratch is sized by it once).
    public init(communicator: Communicator, wireFormat: GradientWireFormat, progress: ExchangeProgress, pollMicroseconds: Int? = nil,
                maxFloats: Int) {
        self.communicator = communicator
        self.wireFormat = wireFormat
        self.progress = progress
        self.pollMicroseconds = pollMicroseconds
        let exchanging = communicator.size > 1
        sums = .allocate(capacity: exchanging && wireFormat == .fp32 && progress == .polled ? maxFloats : 0)
        wire = .allocate(capacity: exchanging && wireFormat == .bf16 ? maxFloats : 0)
        owned = .allocate(capacity: exchanging && wireFormat == .bf16 ? BlockPartition(count: maxFloats, ranks: communicator.size).size(0) * communicator.size : 0)
    }

    deinit {
        sums.deallocate()
        wire.deallocate()
        owned.deallocate()
    }

    public func reduce(_ bucket: UnsafeMutableBufferPointer<Float>) throws {
        guard communicator.size > 1, !bucket.isEmpty else { return }
        switch (wireFormat, progress) {
        case (.fp32, .blocking): try communicator.allreduceSum(bucket)
        case (.fp32, .polled):
            precondition(bucket.count <= sums.count, "a bucket of \(bucket.count) floats exceeds the \(sums.count) the reduction was sized for")
            let target = UnsafeMutableBufferPointer(rebasing: sums[0..<bucket.count])
            try finish(communicator.startAllreduceSum(UnsafeBufferPointer(bucket), into: target))
            bucket.baseAddress!.update(from: target.baseAddress!, count: bucket.count)
        case (.bf16, _): try reduceInBFloat16(bucket)
        }
    }

    private func finish(_ request: CollectiveRequest) throws {
        guard progress == .polled else { return try request.wait() }
        // Slow links (a 4 MB bucket takes 32 ms at 1 Gbit/s) poll rarely and
        // cost few wake-ups; fast ones poll often enough to keep the link busy.
        let interval = pollMicroseconds
            ?? min(Self.pollBounds.upperBound, max(Self.pollBounds.lowerBound, Int(typicalSeconds / Self.testsPerCollective * 1e6)))
        let start = DispatchTime.now().uptimeNanoseconds
        while try !request.test() { usleep(UInt32(interval)) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        typicalSeconds = typicalSeconds == 0 ? seconds : 0.8 * typicalSeconds + 0.2 * seconds
    }

    /// bfloat16 all-to-all of the blocks, a float32 sum on each block's owner
    /// (its own contribution unrounded), a bfloat16 all-gather of the sums.
    private func reduceInBFloat16(_ bucket: UnsafeMutableBufferPointer<Float>) throws {
        let count = bucket.count
        precondition(count <= wire.count, "a bucket of \(count) floats exceeds the \(wire.count) the reduction was sized for")
        let ranks = communicator.size, rank = communicator.rank
        let blocks = BlockPartition(count: count, ranks: ranks)
        let mine = blocks.range(rank)
        let values = bucket.baseAddress!, bits = wire.baseAddress!, received = owned.baseAddress!
        BFloat16.round(values, count: count, into: bits)
        try finish(communicator.startAlltoallBlocks(send: UnsafeBufferPointer(start: bits, count: count),
                                                    receive: UnsafeMutableBufferPointer(start: received, count: mine.count * ranks)))
        let sums = values + mine.lowerBound
        for other in 0..<ranks where other != rank {
            BFloat16.add(received + other * mine.count, count: mine.count, into: sums)
        }
        // Every rank, the owner too, keeps the rounded sum: the weights stay identical.
        BFloat16.round(sums, count: mine.count, into: bits + mine.lowerBound)
        try finish(communicator.startAllgatherBlocks(UnsafeMutableBufferPointer(start: bits, count: count)))
        BFloat16.widen(bits, count: count, into: values)
    }
}

/// bfloat16 as the upper 16 bits of a float32, rounded to nearest even.
public enum BFloat16 {
    @inline(__always)
    public static func round(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    @inline(__always)
    public static func widen(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    public static func round(_ values: UnsafePointer<Float>, count: Int, into bits: UnsafeMutablePointer<UInt16>) {
        for i in 0..<count { bits[i] = round(values[i]) }
    }

    public static func widen(_ bits: UnsafePointer<UInt16>, count: Int, into values: UnsafeMutablePointer<Float>) {
        for i in 0..<count { values[i] = widen(bits[i]) }
    }

    public static func add(_ bits: UnsafePointer<UInt16>, count: Int, into sums: UnsafeMutablePointer<Float>) {
        for i in 0..<count { sums[i] += widen(bits[i]) }
    }
}
