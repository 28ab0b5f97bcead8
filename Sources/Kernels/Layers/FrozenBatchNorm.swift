import Foundation

/// BatchNorm with frozen statistics, as the reference trains it: a per-channel
/// affine map `y = x * scale + shift`, with
/// `scale = weight / sqrt(running_var + eps)` and `shift = bias - running_mean * scale`.
public enum FrozenBatchNorm {
    /// PyTorch's default, which the reference uses.
    public static let epsilon = 1e-5

    /// Folds the four BN tensors into scale and shift (computed in Double,
    /// rounded once).
    public static func fold(weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                            variance: UnsafePointer<Float>, channels: Int,
                            scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>) {
        for c in 0..<channels {
            let s = Double(weight[c]) / (Double(variance[c]) + epsilon).squareRoot()
            scale[c] = Float(s)
            shift[c] = Float(Double(bias[c]) - Double(mean[c]) * s)
        }
    }

    /// y = relu(x * scale + shift) per channel, over a batch of NCHW planes
    /// (every BN of ResNet-38 is followed by a ReLU, so the two are fused);
    /// without `relu`, the affine map alone (ResNet-101's `increase` and
    /// `shortcut` units, whose output meets the residual sum first).
    public static func forwardReLU(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                   scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                                   batch: Int, channels: Int, plane: Int, relu: Bool = true) {
        PhaseProfiler.measure(.elementwise) { Parallel.forEach(batch * channels, minimumChunk: max(1, 16_384 / max(1, plane))) { index in
            let c = index % channels
            let a = scale[c], b = shift[c]
            let x = input + index * plane, y = output + index * plane
            if relu {
                for i in 0..<plane { y[i] = max(0, x[i] * a + b) }
            } else {
                for i in 0..<plane { y[i] = x[i] * a + b }
            }
        } }
    }

    /// The gradient through relu(x * scale + shift), from the layer's output
    /// (output > 0 exactly where the ReLU passed): dx (+)= dy * scale * [y > 0].
    public static func backwardReLU(output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                    inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                                    scale: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int) {
        PhaseProfiler.measure(.elementwise) { Parallel.forEach(batch * channels, minimumChunk: max(1, 16_384 / max(1, plane))) { index in
            let a = scale[index % channels]
            let y = output + index * plane, dy = outputGradient + index * plane, dx = inputGradient + index * plane
            if accumulate {
                for i in 0..<plane { dx[i] += y[i] > 0 ? dy[i] * a : 0 }
            } else {
                for i in 0..<plane { dx[i] = y[i] > 0 ? dy[i] * a : 0 }
            }
        } }
    }

    /// dx = dy * scale per channel (the gradient through the affine map alone).
    public static func backward(outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>,
                                scale: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int) {
        PhaseProfiler.measure(.elementwise) { Parallel.forEach(batch * channels, minimumChunk: max(1, 16_384 / max(1, plane))) { index in
            let a = scale[index % channels]
            let dy = outputGradient + index * plane, dx = inputGradient + index * plane
            for i in 0..<plane { dx[i] = dy[i] * a }
        } }
    }
}
