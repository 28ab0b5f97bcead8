import CBlockedCopy
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
    /// Input and output each in their layout (the same memory only when the layouts match).
    /// With `dropout`, the multipliers [N, C] of a channel dropout that follows
    /// (`ChannelDropout.drawMask`): each plane or slab is multiplied just after
    /// it is written, while it is in the cache, with the numbers a separate
    /// `ChannelDropout.apply` gives.
    public static func forwardReLU(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                   scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                                   batch: Int, channels: Int, plane: Int, relu: Bool = true,
                                   layouts: ConvolutionLayouts = .plain, dropout: UnsafePointer<Float>? = nil) {
        if layouts != .plain {
            return forEachSlab(batch: batch, channels: channels, plane: plane) { slab, n, c in
                sccam_affine_slab(input + slab, layouts.input.channelBlock, output + slab,
                                  layouts.output.channelBlock, scale + c, shift + c, plane, relu ? 1 : 0)
                if let dropout { sccam_dropout_slab(output + slab, layouts.output.channelBlock, dropout + n * channels + c, plane) }
            }
        }
        forEachPlane(batch: batch, channels: channels, plane: plane) { index in
            let c = index % channels
            let a = scale[c], b = shift[c]
            let x = input + index * plane, y = output + index * plane
            if relu {
                for i in 0..<plane { y[i] = max(0, x[i] * a + b) }
            } else {
                for i in 0..<plane { y[i] = x[i] * a + b }
            }
            if let dropout { ChannelDropout.multiply(y, count: plane, by: dropout[index]) }
        }
    }

    /// The gradient through relu(x * scale + shift), from the layer's output
    /// (output > 0 exactly where the ReLU passed): dx (+)= dy * scale * [y > 0].
    /// The output and its gradient lie in `layouts.output`, the input gradient in `layouts.input`.
    public static func backwardReLU(output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                    inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                                    scale: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int,
                                    layouts: ConvolutionLayouts = .plain) {
        backwardReLU(output: output, outputGradient: outputGradient, droppingInPlace: nil, inputGradient: inputGradient,
                     accumulate: accumulate, scale: scale, batch: batch, channels: channels, plane: plane, layouts: layouts)
    }

    /// The same through a channel dropout that followed the ReLU (`forwardReLU`'s
    /// `dropout`): dy is first multiplied by the mask in place, plane by plane or
    /// slab by slab just before it is read, as a separate `ChannelDropout.apply`
    /// on dy would leave it. `output` is the stored output after the dropout.
    public static func backwardReLU(output: UnsafePointer<Float>, outputGradient: UnsafeMutablePointer<Float>,
                                    dropout: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>,
                                    accumulate: Bool, scale: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int,
                                    layouts: ConvolutionLayouts = .plain) {
        backwardReLU(output: output, outputGradient: outputGradient, droppingInPlace: (outputGradient, dropout),
                     inputGradient: inputGradient, accumulate: accumulate, scale: scale, batch: batch, channels: channels,
                     plane: plane, layouts: layouts)
    }

    private static func backwardReLU(output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                     droppingInPlace dropout: (gradient: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>)?,
                                     inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                                     scale: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int,
                                     layouts: ConvolutionLayouts) {
        if layouts != .plain {
            return forEachSlab(batch: batch, channels: channels, plane: plane) { slab, n, c in
                if let dropout {
                    sccam_dropout_slab(dropout.gradient + slab, layouts.output.channelBlock, dropout.mask + n * channels + c, plane)
                }
                sccam_affine_gradient_slab(output + slab, outputGradient + slab, layouts.output.channelBlock,
                                           inputGradient + slab, layouts.input.channelBlock, scale + c, plane,
                                           accumulate ? 1 : 0)
            }
        }
        forEachPlane(batch: batch, channels: channels, plane: plane) { index in
            let a = scale[index % channels]
            if let dropout { ChannelDropout.multiply(dropout.gradient + index * plane, count: plane, by: dropout.mask[index]) }
            let y = output + index * plane, dy = outputGradient + index * plane, dx = inputGradient + index * plane
            if accumulate {
                for i in 0..<plane { dx[i] += y[i] > 0 ? dy[i] * a : 0 }
            } else {
                for i in 0..<plane { dx[i] = y[i] > 0 ? dy[i] * a : 0 }
            }
        }
    }

    /// dx = dy * scale per channel (the gradient through the affine map alone).
    public static func backward(outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>,
                                scale: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int,
                                layouts: ConvolutionLayouts = .plain) {
        if layouts != .plain {
            return forEachSlab(batch: batch, channels: channels, plane: plane) { slab, _, c in
                sccam_affine_gradient_slab(nil, outputGradient + slab, layouts.output.channelBlock,
                                           inputGradient + slab, layouts.input.channelBlock, scale + c, plane, 0)
            }
        }
        forEachPlane(batch: batch, channels: channels, plane: plane) { index in
            let a = scale[index % channels]
            let dy = outputGradient + index * plane, dx = inputGradient + index * plane
            for i in 0..<plane { dx[i] = dy[i] * a }
        }
    }

    /// Runs `body` on every channel plane of an NCHW batch (its index, n x
    /// channels + c; the plane starts at index x plane) across the threads.
    static func forEachPlane(batch: Int, channels: Int, plane: Int, _ body: (_ index: Int) -> Void) {
        PhaseProfiler.measure(.elementwise) { Parallel.forEach(batch * channels, minimumChunk: max(1, 16_384 / max(1, plane)), body) }
    }

    /// Runs `body` on every 16-channel slab (offset of its first element in
    /// both layouts, its image and its first channel) across the threads: the
    /// layouts put a slab in the same place, whichever side is blocked.
    static func forEachSlab(batch: Int, channels: Int, plane: Int, _ body: (_ slab: Int, _ image: Int, _ channel: Int) -> Void) {
        precondition(channels % 16 == 0, "blocked BatchNorm needs channels in whole blocks of 16, not \(channels)")
        let blocks = channels / 16
        PhaseProfiler.measure(.elementwise) { Parallel.forEach(batch * blocks, minimumChunk: max(1, 16_384 / max(1, 16 * plane))) { index in
            let n = index / blocks, c = index % blocks * 16
            body((n * channels + c) * plane, n, c)
        } }
    }
}
