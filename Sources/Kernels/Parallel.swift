import Foundation

/// Splits loops across the threads given to this rank. BLAS threads and these
/// never run at the same time (a layer is either in a GEMM or in its
/// element-wise pass), so both use the same count.
public enum Parallel {
    nonisolated(unsafe) private static var configuredThreads = 1

    public static var threadCount: Int { configuredThreads }

    /// Sets the compute threads of this process: ours and OpenBLAS's.
    public static func setThreadCount(_ count: Int) {
        configuredThreads = max(1, count)
        BLASRuntime.setThreadCount(configuredThreads)
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
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let start = count * t / threads
                let end = count * (t + 1) / threads
                for i in start..<end { shared.value(i) }
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
            DispatchQueue.concurrentPerform(iterations: threads) { t in
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
