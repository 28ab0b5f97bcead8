import CBlockedCopy

/// The residual sum that closes a ResNet-101 bottleneck unit, relu(bn(x) +
/// residual), as one pass each way instead of three: the unit's last frozen
/// BatchNorm, the sum and its ReLU forward; the ReLU's mask, the sum's
/// gradient (the residual's, copied to the identity shortcut) and the
/// BatchNorm's backward. Every tensor lies in one layout. Same roundings as
/// the separate passes.
extension FrozenBatchNorm {
    /// output = relu(input * scale + shift + residual); output may be input's or residual's memory.
    public static func forwardAddingResidual(input: UnsafePointer<Float>, residual: UnsafePointer<Float>,
                                             output: UnsafeMutablePointer<Float>, scale: UnsafePointer<Float>,
                                             shift: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int,
                                             layout: ActivationLayout) {
        if channels % 16 == 0 {
            return forEachSlab(batch: batch, channels: channels, plane: plane) { slab, _, c in
                sccam_affine_add_relu_slab(input + slab, residual + slab, output + slab, layout.channelBlock,
                                           scale + c, shift + c, plane)
            }
        }
        precondition(layout == .plain, "blocked tensors hold whole blocks of 16 channels")
        forEachPlane(batch: batch, channels: channels, plane: plane) { index in
            let a = scale[index % channels], b = shift[index % channels]
            let x = input + index * plane, r = residual + index * plane, y = output + index * plane
            for i in 0..<plane {
                let v = x[i] * a + b + r[i]
                y[i] = v > 0 ? v : 0
            }
        }
    }

    /// From the output and its gradient dy: sumGradient = dy where the output
    /// is positive, else 0 (it may be dy's memory), and normGradient = that
    /// times scale (the gradient at the BatchNorm's input).
    public static func backwardThroughResidual(output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                               sumGradient: UnsafeMutablePointer<Float>, normGradient: UnsafeMutablePointer<Float>,
                                               scale: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int,
                                               layout: ActivationLayout) {
        if channels % 16 == 0 {
            return forEachSlab(batch: batch, channels: channels, plane: plane) { slab, _, c in
                sccam_residual_gradient_slab(output + slab, outputGradient + slab, sumGradient + slab, normGradient + slab,
                                             layout.channelBlock, scale + c, plane)
            }
        }
        precondition(layout == .plain, "blocked tensors hold whole blocks of 16 channels")
        forEachPlane(batch: batch, channels: channels, plane: plane) { index in
            let a = scale[index % channels]
            let y = output + index * plane, dy = outputGradient + index * plane
            let dSum = sumGradient + index * plane, dPre = normGradient + index * plane
            for i in 0..<plane {
                let g: Float = y[i] > 0 ? dy[i] : 0
                dSum[i] = g
                dPre[i] = g * a
            }
        }
    }
}
