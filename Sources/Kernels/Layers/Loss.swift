import Foundation

/// The reference's classification loss (PyTorch `multilabel_soft_margin_loss`,
/// mean reduction): for logits z [N, C] and 0/1 targets y,
/// `L = 1/N Σₙ 1/C Σ꜀ y·softplus(-z) + (1-y)·softplus(z)`.
public enum MultilabelSoftMarginLoss {
    /// log(1 + eˣ) without overflow.
    @inline(__always)
    public static func softplus(_ x: Double) -> Double {
        x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
    }

    @inline(__always)
    public static func sigmoid(_ x: Double) -> Double {
        x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
    }

    /// The loss, averaged over `normalizer` samples (the global batch when the
    /// batch is split across ranks; `batch` otherwise), accumulated in Double.
    /// When `gradient` is given it receives `weight * dL/dz`.
    public static func evaluate(logits: UnsafePointer<Float>, targets: UnsafePointer<Float>, batch: Int, classes: Int,
                                normalizer: Int? = nil, weight: Float = 1,
                                gradient: UnsafeMutablePointer<Float>? = nil) -> Double {
        let samples = Double(normalizer ?? batch)
        var total = 0.0
        for i in 0..<(batch * classes) {
            let z = Double(logits[i]), y = Double(targets[i])
            total += y * softplus(-z) + (1 - y) * softplus(z)
            gradient?[i] = Float(Double(weight) * (sigmoid(z) - y) / (Double(classes) * samples))
        }
        return total / (Double(classes) * samples)
    }
}
