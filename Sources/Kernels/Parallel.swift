import CDNNL
import Foundation

/// Splits loops across the threads given to this rank. BLAS threads and these
/// never run at the same time (a layer is either in a GEMM or in its
/// element-wise pass), so both use the same count.
public enum Parallel {
    /// The size of this process's thread team, set once by `Compute.startThreads()`
    /// when a rank starts: a resource of the process, as OpenBLAS's and OpenMP's
    /// own counts are, not a setting a network or stage reads.
    nonisolated(unsafe) private static var configuredThreads = 1
    /// The spinning workers of `withSpinningWorkers`, while its body runs.
    @usableFromInline nonisolated(unsafe) static var team: SpinningTeam?

    /// The thread that set the count: the rank's compute thread, whose loops
    /// run on OpenMP's team (`perform`).
    nonisolated(unsafe) private static var computeThread: pthread_t?

    public static var threadCount: Int { configuredThreads }

    /// Sets the compute threads of this process: ours, OpenBLAS's and oneDNN's.
    /// The calling thread becomes the one whose loops run on OpenMP's team.
    public static func setThreadCount(_ count: Int) {
        configuredThreads = max(1, count)
        computeThread = pthread_self()
        BLASRuntime.setThreadCount(configuredThreads)
        DNNLRuntime.setThreadCount(configuredThreads)
    }

    /// Runs `body(i)` for every i in 0..<count, in contiguous chunks, one per
    /// thread. Iterations must be independent.
    @inlinable
    public static func forEach(_ count: Int, minimumChunk: Int = 1, _ body: (Int) -> Void) {
        let threads = min(threadCount, max(1, count / max(1, minimumChunk)))
        if threads <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            // The iterations touch disjoint memory by contract; Dispatch only
            // needs to be told so.
            let shared = UncheckedSendable(body)
            perform(threads) { t in
                let start = count * t / threads
                let end = count * (t + 1) / threads
                for i in start..<end { shared.value(i) }
            }
        }
    }
}

extension Parallel {
    /// Runs `body` with this rank's other threads spinning between parallel
    /// loops instead of sleeping (`SpinningTeam`): for a stretch of many short
    /// loops with no BLAS call among them (the dense CRF), where waking
    /// sleeping threads for each loop would cost a tenth of the time. The
    /// threads burn their cores until `body` returns, so keep it to the work.
    public static func withSpinningWorkers<Result>(_ body: () throws -> Result) rethrows -> Result {
        guard threadCount > 1, team == nil else { return try body() }
        let spinning = SpinningTeam(workers: threadCount - 1)
        team = spinning
        defer {
            team = nil
            spinning.stop()
        }
        return try body()
    }

    /// Whether this thread is running inside an OpenMP parallel region.
    static var isInsideOpenMPRegion: Bool { omp_in_parallel() != 0 }

    /// `count` tasks on the spinning team if one is waiting, else, on the
    /// compute thread, on the OpenMP team oneDNN's primitives run on
    /// (`OpenMPTeam`). Other threads keep off that team: a region started
    /// from a data loader's thread makes GNU OpenMP a second team, and with
    /// more OpenMP threads than cores it stops spinning between regions and
    /// sleeps instead, which made the demo's DeepLab training 2x slower.
    /// Their loops run on Dispatch's pool, or inline inside an OpenMP region.
    @usableFromInline
    static func perform(_ count: Int, _ body: (Int) -> Void) {
        if let team, !team.isRunning, team.isOwnedByThisThread {
            team.perform(count, body)
        } else if let computeThread, pthread_equal(computeThread, pthread_self()) != 0 {
            OpenMPTeam.perform(count, threads: min(count, threadCount), body)
        } else if isInsideOpenMPRegion {
            for task in 0..<count { body(task) }
        } else {
            withoutActuallyEscaping(body) { body in
                let shared = UncheckedSendable(body)
                DispatchQueue.concurrentPerform(iterations: count) { shared.value($0) }
            }
        }
    }
}

extension Parallel {
    /// Runs `body` on contiguous ranges covering 0..<count, one per thread
    /// (at least `minimumChunk` iterations each): for loops whose per-index
    /// work is too small for a call per index.
    @inlinable
    public static func forRanges(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        let threads = min(threadCount, max(1, count / max(1, minimumChunk)))
        if threads <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            perform(threads) { t in
                shared.value((count * t / threads)..<(count * (t + 1) / threads))
            }
        }
    }
}

/// Hands a value to concurrent code that the caller knows is used safely.
public struct UncheckedSendable<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}

extension Parallel {
    /// Like `forRanges`, but in several ranges per thread, handed out as
    /// threads come free: for long loops whose halves may not take equal time
    /// (uneven work, or a core that the machine slows down for a while).
    @inlinable
    public static func forBalancedRanges(_ count: Int, minimumChunk: Int = 1, rangesPerThread: Int = 4,
                                         _ body: (Range<Int>) -> Void) {
        let threads = min(threadCount, max(1, count / max(1, minimumChunk)))
        if threads <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        let ranges = min(threads * rangesPerThread, max(threads, count / max(1, minimumChunk)))
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            perform(ranges) { r in
                shared.value((count * r / ranges)..<(count * (r + 1) / ranges))
            }
        }
    }
}
