import Foundation

/// Growable, 64-byte aligned float buffers shared by the kernels that need
/// room of their own between library calls (phase images, tap matrices).
/// One such call runs at a time, under `lock`; each kernel keeps to its own
/// slots, so that a buffer grown for one shape is not regrown for another.
enum ScratchBuffers {
    static let lock = NSLock()
    nonisolated(unsafe) private static var buffers: [(pointer: UnsafeMutablePointer<Float>, count: Int)] = []

    /// Buffer `slot` with room for `count` floats; the caller holds `lock`.
    static func buffer(_ slot: Int, count: Int) -> UnsafeMutablePointer<Float> {
        while buffers.count <= slot { buffers.append((UnsafeMutablePointer<Float>.allocate(capacity: 16), 16)) }
        if buffers[slot].count < count {
            buffers[slot].pointer.deallocate()
            let raw = HugePages.allocate(byteCount: count * 4, alignment: 64)
            buffers[slot] = (raw.bindMemory(to: Float.self, capacity: count), count)
        }
        return buffers[slot].pointer
    }
}
