import Foundation
import Kernels

/// The machine's practical memory bandwidth on this rank's threads: STREAM's
/// triad (c = a + s b) over arrays far larger than the caches, and a pass that
/// only writes (c = pattern, with ordinary stores: each line read for
/// ownership first, as our transforms' stores are). A pass that streams its
/// data from memory cannot gain more from added threads than these do, so
/// thread-scaling reports quote them beside their phases.
public final class MemoryBandwidth {
    private let count: Int
    private let a, b, c: UnsafeMutablePointer<Float>

    /// Three arrays of `floats` floats each (3 x 256 MB by default), first
    /// touched by the threads that will stream them.
    public init(floats: Int = 1 << 26) {
        count = floats
        a = .allocate(capacity: floats)
        b = .allocate(capacity: floats)
        c = .allocate(capacity: floats)
        let (a, b, c) = (UncheckedSendable(a), UncheckedSendable(b), UncheckedSendable(c))
        Parallel.forRanges(floats, minimumChunk: 1 << 16) { range in
            (a.value + range.lowerBound).initialize(repeating: 1, count: range.count)
            (b.value + range.lowerBound).initialize(repeating: 2, count: range.count)
            (c.value + range.lowerBound).initialize(repeating: 0, count: range.count)
        }
    }

    deinit {
        a.deallocate()
        b.deallocate()
        c.deallocate()
    }

    /// GB/s of the best of `repetitions` triads on the current thread count,
    /// counting 12 bytes per element as STREAM does (the stores' reads for
    /// ownership are not counted).
    public func triad(repetitions: Int = 5) -> Double {
        let (a, b, c) = (UncheckedSendable(a), UncheckedSendable(b), UncheckedSendable(c))
        var best = Double.infinity
        for _ in 0..<repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            Parallel.forRanges(count, minimumChunk: 1 << 16) { range in
                let (a, b, c) = (a.value, b.value, c.value)
                for i in range { c[i] = a[i] + 0.5 * b[i] }
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return Double(3 * count * MemoryLayout<Float>.stride) / best / 1e9
    }

    /// GB/s of the best of `repetitions` passes that write c and read nothing,
    /// counting 4 bytes per element (the reads for ownership are not counted).
    /// The values vary along the array, so the compiler cannot turn the loop
    /// into a memset (whose non-temporal stores skip those reads).
    public func writes(repetitions: Int = 5) -> Double {
        let c = UncheckedSendable(c)
        var best = Double.infinity
        for _ in 0..<repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            Parallel.forRanges(count, minimumChunk: 1 << 16) { range in
                let c = c.value
                for i in range { c[i] = Float(i & 7) }
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return Double(count * MemoryLayout<Float>.stride) / best / 1e9
    }
}
