import Kernels

/// All activation and scratch memory of one batch shape, allocated (and first
/// touched) once and reused by every pass of that shape: a training step
/// allocates nothing in steady state.
final class Workspace {
    enum Purpose: Equatable {
        /// Forward only: blocks share their activation buffers.
        case inference
        /// Forward and backward: the trainable blocks (b3 on) keep their
        /// activations; with `inputGradient` the frozen stem keeps them too.
        case training(inputGradient: Bool)
    }

    struct Key: Equatable {
        let batch, height, width: Int
        let purpose: Purpose
    }

    let key: Key
    private var allocations: [(pointer: UnsafeMutablePointer<Float>, count: Int)] = []
    private(set) var floatCount = 0

    // Forward.
    /// Each backbone block's input size.
    var blockInputSizes: [(height: Int, width: Int)] = []
    var blockBuffers: [BlockBuffers] = []
    /// Ping-pong block outputs (largest activation of the network).
    var activationA: UnsafeMutablePointer<Float>!
    var activationB: UnsafeMutablePointer<Float>!
    /// Floats of im2col scratch the largest convolution needs; allocated only
    /// when the im2col engine runs (`scratch(needed:)`): oneDNN needs none.
    var scratchCount = 0
    private var im2colScratch: UnsafeMutablePointer<Float>?
    /// relu(bn7(b7 output)), after dropout7 in training [N, C, h, w].
    var conv6: UnsafeMutablePointer<Float>!
    var conv6Mask: UnsafeMutablePointer<Float>?
    /// Global average pool of conv6 [N, C].
    var pooled: UnsafeMutablePointer<Float>!
    /// Per head [N, classes].
    var logits: [UnsafeMutablePointer<Float>] = []

    // Backward.
    var gradientA: UnsafeMutablePointer<Float>?
    var gradientB: UnsafeMutablePointer<Float>?
    var gradientScratch: GradientScratch?
    var logitGradients: [UnsafeMutablePointer<Float>] = []
    var pooledGradient: UnsafeMutablePointer<Float>?
    var inputGradient: UnsafeMutablePointer<Float>?

    /// A counting workspace only adds up what a plan would allocate: every
    /// buffer is the same one-float placeholder, never to be read or written.
    let countsOnly: Bool
    private lazy var placeholder = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    init(key: Key, countsOnly: Bool = false) {
        self.key = key
        self.countsOnly = countsOnly
    }

    deinit {
        for allocation in allocations { allocation.pointer.deallocate() }
        if countsOnly { placeholder.deallocate() }
    }

    /// A zero-filled buffer owned by this workspace.
    func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        if countsOnly {
            floatCount += count
            return placeholder
        }
        let pointer = HugePages.zeroed(count, as: Float.self)
        allocations.append((pointer, count))
        floatCount += count
        return pointer
    }

    var byteCount: Int { floatCount * MemoryLayout<Float>.stride }

    /// The im2col scratch when `path` is the im2col reference (allocated the
    /// first time it is asked for), else a placeholder no convolution touches.
    func scratch(needed: Bool) -> UnsafeMutablePointer<Float> {
        guard needed else { return ConvolutionScratch.none }
        if let im2colScratch { return im2colScratch }
        let pointer = allocate(scratchCount)
        im2colScratch = pointer
        return pointer
    }
}
