#if canImport(Glibc)
import Glibc
#endif

/// Buffers of megabytes (activations, parameters and their gradients,
/// momentum, Winograd-domain weights, pooled operands) on the kernel's 2 MiB
/// transparent huge pages.
///
/// Every pass over such a buffer walks far more 4 KiB pages than the TLB
/// holds, and in a virtual machine each miss walks two page tables; the
/// float32 weight transform, for one, writes 36 rows at once, each megabytes
/// from the next. Where the kernel's setting is `madvise` (Debian's default)
/// nothing gets huge pages unless it asks, so large buffers ask
/// (MADV_HUGEPAGE) before their first touch; under `always` this changes
/// nothing and under `never` the advice is ignored. Smaller buffers keep
/// malloc: rounding them up to 2 MiB would waste more than it saves. The
/// ResNet-38 training step gained 1.08x (median of five interleaved rounds,
/// Zen 3 VM, 2 threads; docs/performance.md).
public enum HugePages {
    /// The x86-64 huge page.
    public static let pageBytes = 2 << 20
    /// From this size on, a buffer is allocated on whole huge pages.
    public static let thresholdBytes = 4 << 20

    /// Uninitialised memory for `byteCount` bytes, aligned to `alignment`;
    /// at `thresholdBytes` and above on whole, advised huge pages. Freed with
    /// `deallocate()` like any raw allocation.
    public static func allocate(byteCount: Int, alignment: Int = 64) -> UnsafeMutableRawPointer {
        guard byteCount >= thresholdBytes else { return .allocate(byteCount: max(1, byteCount), alignment: alignment) }
        let rounded = (byteCount + pageBytes - 1) / pageBytes * pageBytes
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: rounded, alignment: max(alignment, pageBytes))
        advise(pointer, byteCount: rounded)
        return pointer
    }

    /// `count` zeros (at least one), on huge pages when large.
    public static func zeroed<Element: Numeric>(_ count: Int, as type: Element.Type = Element.self) -> UnsafeMutablePointer<Element> {
        let pointer = allocate(byteCount: max(1, count) * MemoryLayout<Element>.stride)
            .bindMemory(to: Element.self, capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
        return pointer
    }

    /// Asks for huge pages on the whole 2 MiB extents inside memory not yet
    /// touched (`Array(unsafeUninitializedCapacity:)`'s storage, say); a
    /// no-op on smaller ranges and off Linux.
    public static func advise(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        #if os(Linux)
        guard byteCount >= thresholdBytes else { return }
        let start = (Int(bitPattern: pointer) + pageBytes - 1) / pageBytes * pageBytes
        let end = (Int(bitPattern: pointer) + byteCount) / pageBytes * pageBytes
        guard end > start, let first = UnsafeMutableRawPointer(bitPattern: start) else { return }
        // Advice only: a kernel without transparent huge pages answers EINVAL, and the buffer works as before.
        _ = madvise(first, end - start, Int32(MADV_HUGEPAGE))
        #endif
    }
}
