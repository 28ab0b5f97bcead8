import Foundation

/// Sums the gradient buffer over every rank while backward still computes.
///
/// Backward reports, as it finishes each block, the tail of the flat gradient
/// buffer that is final (`gradientsReady(from:)`); once a tail holds a bucket's
/// worth of values it is queued, and a thread of the exchange's own reduces
/// the queued buckets on a duplicate communicator. Open MPI has no
/// asynchronous progress, so a non-blocking allreduce left alone during
/// backward did almost all its work in the final wait; the thread drives each
/// collective to its end, testing it about 20 times over its expected time
/// and sleeping in between (a blocking call would spin and take half of a core that compute
/// shares: `ExchangeProgress`). The main thread waits only for what is left
/// when backward ends (`finishStep`).
///
/// Only the exchange's thread calls MPI between the first queued bucket and
/// the end of `finishStep`; the main thread's own collectives (loss sums,
/// stop flags) come before or after. Buckets are queued in the same order on
/// every rank, so the collectives match.
public final class GradientExchange: @unchecked Sendable {
    public struct Settings: Codable, Sendable, Equatable {
        /// Bytes per queued bucket and per collective call (`sccam bench allreduce`
        /// chose it: see docs/scaling.md).
        public var bucketBytes: Int
        public var wireFormat: GradientWireFormat
        public var progress: ExchangeProgress
        /// A fixed interval between tests of a polled collective; nil adapts it (`ExchangeProgress.polled`).
        public var pollMicroseconds: Int?

        public static let defaultBucketBytes = 4 << 20

        public init(bucketBytes: Int = Settings.defaultBucketBytes, wireFormat: GradientWireFormat = .fp32,
                    progress: ExchangeProgress = .polled, pollMicroseconds: Int? = nil) {
            self.bucketBytes = bucketBytes
            self.wireFormat = wireFormat
            self.progress = progress
            self.pollMicroseconds = pollMicroseconds
        }

        var bucketFloats: Int { max(1, bucketBytes / MemoryLayout<Float>.stride) }
    }

    /// What the exchange did, for benchmarks and logs.
    public struct Statistics: Sendable, Equatable {
        public var steps = 0
        public var buckets = 0
        /// Buckets not yet summed when backward reported the last gradients, over all steps.
        public var bucketsPendingAtBackwardEnd = 0
        /// CPU time the exchange's thread used (polling, copies, bf16 conversions, MPI's own work).
        public var threadCPUSeconds = 0.0
    }

    public let settings: Settings
    /// Complete after `close()`.
    public private(set) var statistics = Statistics()
    private let gradients: UnsafeMutableBufferPointer<Float>
    private let ranks: Int
    private let channel: Communicator?
    private let reduction: BucketReduction?
    private let condition = NSCondition()
    // Shared with the thread, under `condition`.
    private var pending: [Range<Int>] = []
    private var queuedCount = 0
    private var reducedCount = 0
    private var failure: Error?
    private var closing = false
    private var threadEnded = false
    // The main thread's own.
    private var reducedFrom = 0
    private var stepStart: UInt64 = 0

    /// Starts the exchange's thread (none on one rank). Collective: every rank
    /// creates its exchange at the same point.
    public init(communicator: Communicator, gradients: UnsafeMutableBufferPointer<Float>, settings: Settings = Settings()) throws {
        self.settings = settings
        self.gradients = gradients
        ranks = communicator.size
        guard communicator.size > 1 else {
            channel = nil
            reduction = nil
            return
        }
        let channel = try communicator.duplicate()
        self.channel = channel
        reduction = BucketReduction(communicator: channel, wireFormat: settings.wireFormat, progress: settings.progress,
                                    pollMicroseconds: settings.pollMicroseconds, maxFloats: min(settings.bucketFloats, max(1, gradients.count)))
        // The thread holds the exchange until `close()` ends it.
        let thread = Thread { self.reduceQueuedBuckets() }
        thread.name = "sccam gradient exchange"
        thread.start()
    }

    /// Called before backward starts writing this step's gradients.
    public func beginStep() {
        reducedFrom = gradients.count
    }

    /// Backward finished `gradients[lowerBound...]`: queue it once it holds a
    /// bucket, and always when it reaches the buffer's start.
    public func gradientsReady(from lowerBound: Int) {
        guard ranks > 1, lowerBound < reducedFrom,
              reducedFrom - lowerBound >= settings.bucketFloats || lowerBound == 0 else { return }
        // Tail first: the order backward finishes them, the same on every rank.
        var buckets: [Range<Int>] = []
        var upper = reducedFrom
        while upper > lowerBound {
            let lower = max(lowerBound, upper - settings.bucketFloats)
            buckets.append(lower..<upper)
            upper = lower
        }
        reducedFrom = lowerBound
        condition.lock()
        if lowerBound == 0 {
            statistics.steps += 1
            statistics.bucketsPendingAtBackwardEnd += queuedCount - reducedCount
        }
        statistics.buckets += buckets.count
        pending += buckets
        queuedCount += buckets.count
        condition.signal()
        condition.unlock()
    }

    /// Waits until the whole buffer is summed; returns the seconds waited.
    /// What backward did not report is final now, and goes last.
    public func finishStep() throws -> Double {
        guard ranks > 1 else { return 0 }
        let start = DispatchTime.now().uptimeNanoseconds
        if reducedFrom > 0 { gradientsReady(from: 0) }
        condition.lock()
        defer { condition.unlock() }
        while reducedCount < queuedCount && failure == nil { condition.wait() }
        if let failure { throw failure }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Stops the thread after the queued buckets and frees the duplicate
    /// communicator. Idempotent; every exchange must be closed.
    public func close() {
        guard let channel else { return }
        condition.lock()
        let running = !closing
        closing = true
        condition.broadcast()
        while !threadEnded && failure == nil { condition.wait() }
        let clean = failure == nil
        condition.unlock()
        // A thread stuck in a failed collective keeps its communicator.
        if running && clean { channel.finalize() }
    }

    private func reduceQueuedBuckets() {
        while true {
            condition.lock()
            while pending.isEmpty && !closing { condition.wait() }
            if pending.isEmpty {
                var time = timespec()
                if clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time) == 0 {
                    statistics.threadCPUSeconds = Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
                }
                threadEnded = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let bucket = pending.removeFirst()
            let failed = failure != nil
            condition.unlock()
            var error: Error?
            if !failed {
                do { try reduction!.reduce(UnsafeMutableBufferPointer(rebasing: gradients[bucket])) } catch let caught { error = caught }
            }
            condition.lock()
            if let error, failure == nil { failure = error }
            reducedCount += 1
            condition.broadcast()
            condition.unlock()
        }
    }
}
