import CDNNL
import Foundation

/// Weights already converted into a primitive's layout during one network
/// pass, so that the other primitives of the pass that read the same
/// weights in the same layout (backward-data after forward; DeepLab's three
/// scales) skip the conversion.
///
/// A network draws a new epoch at the start of every forward pass and runs
/// that pass and its backward pass under it (`ConvolutionEngine.reusingConvertedWeights`):
/// weights do not change between a forward pass and its backward pass, and a
/// new epoch invalidates every earlier copy. Calls without an epoch (single
/// layers, tests) convert every time, as before. A copy keeps its buffer
/// across epochs while each epoch reads it twice or more, so a training step
/// allocates nothing; copies read once are dropped (`dropUnread`). In
/// training that holds about one more set of the trainable weights.
public enum ConvertedWeights {
    private static let epochLock = NSLock()
    nonisolated(unsafe) private static var lastEpoch = 0

    /// A number no earlier pass used.
    public static func nextEpoch() -> Int {
        epochLock.withLock {
            lastEpoch += 1
            return lastEpoch
        }
    }

    private struct Key: Hashable {
        let weights: UnsafeRawPointer
        let layout: Int
    }

    private struct Copy {
        let buffer: UnsafeMutableRawPointer
        let bytes: Int
        /// The last epoch that used it, and whether a second call in that epoch did.
        var epoch: Int
        var isReused: Bool
    }

    // All below are used under DNNLConvolution's lock.
    nonisolated(unsafe) private static var copies: [Key: Copy] = [:]
    /// Weights whose copy went unread in an epoch: converted into the pool from then on.
    nonisolated(unsafe) private static var singleUse: Set<Key> = []
    nonisolated(unsafe) private static var newestEpoch = 0
    nonisolated(unsafe) private static var layouts: [dnnl_memory_desc_t] = []

    /// Bytes the copies hold now.
    public static var heldBytes: Int {
        DNNLConvolution.withLock { copies.values.reduce(0) { $0 + $1.bytes } }
    }

    /// A small number that names this memory layout (equal descriptors, equal numbers).
    static func layoutNumber(_ desc: UnsafePointer<dnnl_memory_desc_t>) -> Int {
        for index in layouts.indices where withUnsafePointer(to: &layouts[index], { dnnl_memory_desc_equal($0, desc) != 0 }) {
            return index
        }
        layouts.append(desc.pointee)
        return layouts.count - 1
    }

    /// The copy of `weights` in layout `layout` for `epoch`, and whether it
    /// already holds them (converted earlier in the same epoch); nil where a
    /// copy does not pay (it was read only once in an earlier epoch).
    static func copy(of weights: UnsafeRawPointer, layout: Int, bytes: Int, epoch: Int)
        -> (buffer: UnsafeMutableRawPointer, isCurrent: Bool)? {
        if epoch > newestEpoch {
            dropUnread()
            newestEpoch = epoch
        }
        let key = Key(weights: weights, layout: layout)
        guard !singleUse.contains(key) else { return nil }
        if var entry = copies[key], entry.bytes == bytes {
            let isCurrent = entry.epoch == epoch
            if isCurrent { entry.isReused = true } else { (entry.epoch, entry.isReused) = (epoch, false) }
            copies[key] = entry
            return (entry.buffer, isCurrent)
        }
        copies[key]?.buffer.deallocate()
        let buffer = HugePages.allocate(byteCount: bytes, alignment: 64)
        copies[key] = Copy(buffer: buffer, bytes: bytes, epoch: epoch, isReused: false)
        return (buffer, false)
    }

    /// At the first call of a new epoch: frees the copies the last epoch did not
    /// use (a network that is gone, layers that no longer run) and the ones it
    /// read only once (frozen layers without backward-data, inference one image
    /// at a time), so that only copies that save a conversion hold memory.
    private static func dropUnread() {
        for (key, entry) in copies where entry.epoch < newestEpoch || !entry.isReused {
            if entry.epoch == newestEpoch { singleUse.insert(key) }
            entry.buffer.deallocate()
            copies[key] = nil
        }
    }
}
