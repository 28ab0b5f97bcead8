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
    /// Momentum buffers, laid out as the gradient buffer.
    public private(set) var buffer: [Float]
    private var hasBuffer: Bool
    /// Per trainable tensor: (value offset, gradient offset, count, lr multiplier).
    private let groups: [(value: Int, gradient: Int, count: Int, multiplier: Float, decay: Float)]
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
        buffer = [Float](repeating: 0, count: store.trainableCount)
        self.stepSize = max(1, stepSize)
        let rule = group ?? { entry in (headPrefixes.contains { entry.name.hasPrefix($0) } ? 10 : 1, true) }
        groups = store.entries.compactMap { entry in
            guard let gradient = entry.gradientOffset else { return nil }
            let (multiplier, decays) = rule(entry)
            return (entry.offset, gradient, entry.count, multiplier, decays ? weightDecay : 0)
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
                let rate = lr * group.multiplier, weightDecay = group.decay
                let w = values + group.value, g = gradients + group.gradient, b = buf + group.gradient
                let (momentum, hasBuffer) = (self.momentum, self.hasBuffer)
                // Element by element, so the threads' split changes no result.
                Parallel.forRanges(group.count, minimumChunk: 1 << 16) { range in
                    if hasBuffer {
                        for i in range {
                            let d = g[i] + weightDecay * w[i]
                            b[i] = momentum * b[i] + d
                            w[i] -= rate * b[i]
                        }
                    } else {
                        for i in range {
                            let d = g[i] + weightDecay * w[i]
                            b[i] = d
                            w[i] -= rate * d
                        }
                    }
                }
            }
        }
        hasBuffer = true
        step += 1
    }

    /// Restores the state saved with a checkpoint.
    public func restore(step: Int, buffer saved: [Float]) {
        precondition(saved.count == buffer.count, "momentum buffer of the wrong size")
        self.step = step
        buffer = saved
        hasBuffer = step > 0
        currentLearningRate = learningRate
    }
}

import Foundation
