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
/// layers, tests) convert every time, as before. Each copy keeps its buffer
/// across epochs, so a training step allocates nothing: the copies hold
/// about one more set of weights in memory.
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

    // Both below are used under DNNLConvolution's lock.
    nonisolated(unsafe) private static var copies: [Key: (buffer: UnsafeMutableRawPointer, bytes: Int, epoch: Int)] = [:]
    nonisolated(unsafe) private static var layouts: [dnnl_memory_desc_t] = []

    /// A small number that names this memory layout (equal descriptors, equal numbers).
    static func layoutNumber(_ desc: UnsafePointer<dnnl_memory_desc_t>) -> Int {
        for index in layouts.indices where withUnsafePointer(to: &layouts[index], { dnnl_memory_desc_equal($0, desc) != 0 }) {
            return index
        }
        layouts.append(desc.pointee)
        return layouts.count - 1
    }

    /// The copy of `weights` in layout `layout` for `epoch`, and whether it
    /// already holds them (converted earlier in the same epoch).
    static func copy(of weights: UnsafeRawPointer, layout: Int, bytes: Int, epoch: Int)
        -> (buffer: UnsafeMutableRawPointer, isCurrent: Bool) {
        let key = Key(weights: weights, layout: layout)
        if var entry = copies[key], entry.bytes == bytes {
            let isCurrent = entry.epoch == epoch
            entry.epoch = epoch
            copies[key] = entry
            return (entry.buffer, isCurrent)
        }
        copies[key]?.buffer.deallocate()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        copies[key] = (buffer, bytes, epoch)
        return (buffer, false)
    }
}
