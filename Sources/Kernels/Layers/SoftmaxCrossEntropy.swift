import Foundation

/// PyTorch's `CrossEntropyLoss(ignore_index=255)` over per-pixel logits
/// [N, C, H, W] and labels [N, H, W]: the sum of -log softmax(z)[y] over the
/// labelled pixels, divided by `normalizer` (their count in the reference's
/// sub-batch, allreduced when a sub-batch is split over ranks).
public enum SoftmaxCrossEntropy {
    public static let ignoredLabel: Int32 = 255

    /// Labelled pixels in `labels` (any label but 255 in 0..<classes; others are errors upstream).
    public static func labelledCount(_ labels: UnsafePointer<Int32>, count: Int) -> Int {
        var n = 0
        for i in 0..<count where labels[i] != ignoredLabel { n += 1 }
        return n
    }

    /// The summed loss of the labelled pixels (in Double), divided by
    /// `normalizer`; with `gradient`, it receives weight * dL/dz
    /// = weight * (softmax(z) - onehot(y)) / normalizer, 0 at ignored pixels.
    public static func evaluate(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
                                plane: Int, normalizer: Double, weight: Float = 1,
                                gradient: UnsafeMutablePointer<Float>? = nil) -> Double {
        let partials = UnsafeMutableBufferPointer<Double>.allocate(capacity: batch)
        defer { partials.deallocate() }
        let factor = Double(weight) / normalizer
        Parallel.forEach(batch) { n in
            let z = logits + n * classes * plane, label = labels + n * plane
            let dz = gradient.map { $0 + n * classes * plane }
            var total = 0.0
            for i in 0..<plane {
                let y = label[i]
                guard y != ignoredLabel else {
                    if let dz { for c in 0..<classes { dz[c * plane + i] = 0 } }
                    continue
                }
                var largest = -Float.infinity
                for c in 0..<classes { largest = max(largest, z[c * plane + i]) }
                var sum = 0.0
                for c in 0..<classes { sum += exp(Double(z[c * plane + i] - largest)) }
                total += log(sum) - Double(z[Int(y) * plane + i] - largest)
                if let dz {
                    for c in 0..<classes {
                        let p = exp(Double(z[c * plane + i] - largest)) / sum
                        dz[c * plane + i] = Float(factor * (p - (c == Int(y) ? 1 : 0)))
                    }
                }
            }
            partials[n] = total
        }
        return partials.reduce(0, +) / normalizer
    }
}
