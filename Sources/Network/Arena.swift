import Kernels

/// Zero-filled buffers allocated once for one batch shape and freed together:
/// what a network keeps between forward and backward, reused every step.
final class Arena {
    private var floats: [UnsafeMutablePointer<Float>] = []
    private var indices: [UnsafeMutablePointer<Int32>] = []
    private(set) var byteCount = 0

    init() {}

    deinit {
        for pointer in floats { pointer.deallocate() }
        for pointer in indices { pointer.deallocate() }
    }

    func floats(_ count: Int) -> UnsafeMutablePointer<Float> { allocate(count, into: &floats) }

    func indices(_ count: Int) -> UnsafeMutablePointer<Int32> { allocate(count, into: &indices) }

    private func allocate<Element: Numeric>(_ count: Int, into list: inout [UnsafeMutablePointer<Element>]) -> UnsafeMutablePointer<Element> {
        let pointer = HugePages.zeroed(count, as: Element.self)
        list.append(pointer)
        byteCount += max(1, count) * MemoryLayout<Element>.stride
        return pointer
    }
}
