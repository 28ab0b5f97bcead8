import Kernels
/// The reference's optimiser (tool/torchutils.PolyOptimizer over PyTorch 1.0
/// SGD, spec 3.4), on the flat gradient buffer:
///
///     lr_g = base_lr * multiplier_g * (1 - step / max_step) ^ 0.9   (while step < max_step)
///     g = grad + weight_decay * w
///     buf = g (first step), else momentum * buf + g
///     w = w - lr_g * buf
///
/// Groups: backbone conv weights (x1) and head weights (x10: the classifier's
/// fc8*, AffinityNet's f8_* and f9, by `headPrefixes`), both with weight
/// decay; no conv has a bias, so the 2x and 20x bias groups are empty. Frozen
/// tensors have no gradient and never move. The reference's effective momentum
/// is 0.0005: it passes its weight decay positionally into SGD's momentum slot.
///
/// DeepLab's schedule (deeplab-v2.md 4.6-4.7) is the same update with other
/// groups (ASPP weights x10, ASPP biases x20 without decay: `group`) and a
/// learning rate recomputed only every `stepSize` (10) steps.
public final class PolySGD: @unchecked Sendable {
    public static let referenceMomentum: Float = 0.0005
    /// The weight decay of every network the reference trains (classifier, AffinityNet, DeepLab-v2).
    public static let referenceWeightDecay: Float = 5e-4

    public let baseLearningRate: Float
    public let weightDecay: Float
    public let momentum: Float
    public let power: Double
    public let maxStep: Int
    public private(set) var step: Int
    /// Momentum buffers at the gradient buffer's offsets, each in its tensor's
    /// own (OIHW) order whatever the gradient's layout, so that a checkpoint's
    /// state does not depend on the convolution engine.
    public private(set) var buffer: [Float]
    private var hasBuffer: Bool
    /// Per trainable tensor: (its store entry, lr multiplier, weight decay).
    private let groups: [(entry: Int, multiplier: Float, decay: Float)]
    private var currentLearningRate: Float
    public let stepSize: Int

    /// A tensor's learning-rate multiplier and whether weight decay applies.
    public typealias Group = (multiplier: Float, decays: Bool)

    public init(store: ParameterStore, baseLearningRate: Float, maxStep: Int, weightDecay: Float = PolySGD.referenceWeightDecay,
                momentum: Float = PolySGD.referenceMomentum, power: Double = 0.9, headPrefixes: [String] = ["fc8"],
                stepSize: Int = 1, group: ((ParameterStore.Entry) -> Group)? = nil) {
        self.baseLearningRate = baseLearningRate
        self.weightDecay = weightDecay
        self.momentum = momentum
        self.power = power
        self.maxStep = maxStep
        step = 0
        hasBuffer = false
        buffer = Self.zeroedMomentum(store.trainableCount)
        self.stepSize = max(1, stepSize)
        let rule = group ?? { entry in (headPrefixes.contains { entry.name.hasPrefix($0) } ? 10 : 1, true) }
        groups = store.entries.indices.compactMap { index in
            let entry = store.entries[index]
            guard entry.isTrainable else { return nil }
            let (multiplier, decays) = rule(entry)
            return (index, multiplier, decays ? weightDecay : 0)
        }
        currentLearningRate = baseLearningRate
    }

    /// The base learning rate this step uses (before group multipliers).
    public var learningRate: Float {
        guard step < maxStep else { return currentLearningRate }
        let scheduled = step - step % stepSize
        return Float(Double(baseLearningRate) * pow(1 - Double(scheduled) / Double(maxStep), power))
    }

    /// One update of every trainable tensor from `store.gradients`.
    public func apply(to store: ParameterStore) {
        let lr = learningRate
        currentLearningRate = lr
        let values = store.values.baseAddress!, gradients = store.gradients.baseAddress!
        buffer.withUnsafeMutableBufferPointer { momentumBuffer in
            let buf = momentumBuffer.baseAddress!
            for group in groups {
                let entry = store.entries[group.entry]
                let step = Step(rate: lr * group.multiplier, weightDecay: group.decay, momentum: momentum, hasBuffer: hasBuffer)
                let w = values + entry.offset, g = gradients + entry.gradientOffset!, b = buf + entry.gradientOffset!
                // Element by element, so the threads' split changes no result.
                switch entry.gradientLayout {
                case .plain:
                    Parallel.forRanges(entry.count, minimumChunk: 1 << 16) { range in
                        step.update(w + range.lowerBound, b + range.lowerBound, gradient: g + range.lowerBound, count: range.count)
                    }
                case .blocked16:
                    // A band of 16 outputs at a time: its gradient tiles are put in OIHW
                    // order in a per-thread buffer (at most 590 KB, so it stays in L2),
                    // then the band's 16 rows of weights and momentum, contiguous, are
                    // updated as one stream.
                    let outputs = entry.shape[0], inputs = entry.shape[1], taps = entry.count / (outputs * inputs)
                    let rowLength = inputs * taps, stride = WeightGradientLayout.paddedRowStride(rowLength), bands = outputs / 16
                    let threads = min(Parallel.threadCount, bands), scratch = self.scratch(threads: threads, floats: 16 * stride)
                    Parallel.forEach(threads) { thread in
                        let rows = scratch + thread * 16 * stride
                        for band in bands * thread / threads..<bands * (thread + 1) / threads {
                            WeightGradientLayout.unblock(band: band, of: g, inputs: inputs, taps: taps, into: rows, rowStride: stride)
                            for o in 0..<16 {
                                let start = (band * 16 + o) * rowLength
                                step.update(w + start, b + start, gradient: rows + o * stride, count: rowLength)
                            }
                        }
                    }
                }
            }
        }
        hasBuffer = true
        step += 1
    }

    /// Per-thread buffers for blocked gradients put in OIHW order, kept between
    /// steps: allocations this large would otherwise be mapped afresh per band.
    private var scratchBuffer: UnsafeMutablePointer<Float>?
    private var scratchCapacity = 0

    private func scratch(threads: Int, floats: Int) -> UnsafeMutablePointer<Float> {
        if threads * floats > scratchCapacity {
            scratchBuffer?.deallocate()
            scratchCapacity = threads * floats
            scratchBuffer = .allocate(capacity: scratchCapacity)
        }
        return scratchBuffer!
    }

    deinit { scratchBuffer?.deallocate() }

    /// The update of `count` consecutive elements.
    private struct Step {
        let rate, weightDecay, momentum: Float
        let hasBuffer: Bool

        @inline(__always)
        func update(_ w: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>,
                    count: Int) {
            if hasBuffer {
                for i in 0..<count {
                    let d = g[i] + weightDecay * w[i]
                    b[i] = momentum * b[i] + d
                    w[i] -= rate * b[i]
                }
            } else {
                for i in 0..<count {
                    let d = g[i] + weightDecay * w[i]
                    b[i] = d
                    w[i] -= rate * d
                }
            }
        }
    }

    /// A momentum buffer of `count` zeros, on huge pages when large (it is
    /// streamed once per step, as the parameters and gradients are).
    private static func zeroedMomentum(_ count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { storage, initialized in
            if let base = storage.baseAddress {
                HugePages.advise(UnsafeMutableRawPointer(base), byteCount: count * MemoryLayout<Float>.stride)
                base.initialize(repeating: 0, count: count)
            }
            initialized = count
        }
    }

    /// Restores the state saved with a checkpoint.
    public func restore(step: Int, buffer saved: [Float]) {
        precondition(saved.count == buffer.count, "momentum buffer of the wrong size")
        self.step = step
        // Copied into the buffer in place: it stays on its huge pages.
        buffer.withUnsafeMutableBufferPointer { target in _ = target.update(fromContentsOf: saved) }
        hasBuffer = step > 0
        currentLearningRate = learningRate
    }
}

import Foundation
