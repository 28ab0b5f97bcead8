/// The buffers of mean-field inference, kept between calls (and images):
/// fresh memory is slow to touch on these machines, and a VOC image's
/// buffers come to some 60 MB at 21 labels. Not shared between threads.
public final class CRFWorkspace: @unchecked Sendable {
    private(set) var storage: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    public init() {
        capacity = 0
        storage = .allocate(capacity: 1)
    }

    deinit { storage.deallocate() }

    /// At least `count` floats (their contents are not kept).
    func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            storage.deallocate()
            storage = .allocate(capacity: count)
            capacity = count
        }
        return storage
    }
}
