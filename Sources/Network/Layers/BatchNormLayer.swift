import Kernels

/// A frozen BatchNorm, followed by a ReLU unless `relu` is false (every BN of
/// ResNet-38 has one; ResNet-101's `increase` and `shortcut` units do not).
/// Its four tensors keep the reference's names; the folded scale and shift
/// live in the network's `foldedAffine` buffer at `foldedOffset`.
struct BatchNormLayer {
    let name: String
    let channels: Int
    let relu: Bool
    let weight, bias, runningMean, runningVariance: ParameterID
    let foldedOffset: Int

    init(_ name: String, channels: Int, relu: Bool = true, foldedOffset: Int, layout: inout ParameterStore.Layout) {
        self.name = name
        self.channels = channels
        self.relu = relu
        self.foldedOffset = foldedOffset
        weight = layout.add("\(name).weight", shape: [channels], trainable: false)
        bias = layout.add("\(name).bias", shape: [channels], trainable: false)
        runningMean = layout.add("\(name).running_mean", shape: [channels], trainable: false)
        runningVariance = layout.add("\(name).running_var", shape: [channels], trainable: false)
    }

    /// Scale and shift for this layer, from the store's current values.
    func fold(store: ParameterStore, into folded: UnsafeMutablePointer<Float>) {
        FrozenBatchNorm.fold(weight: store.pointer(weight), bias: store.pointer(bias),
                             mean: store.pointer(runningMean), variance: store.pointer(runningVariance),
                             channels: channels, scale: folded + foldedOffset, shift: folded + foldedOffset + channels)
    }

    /// output = [relu](bn(input)), each in its layout (`layouts.input` and
    /// `layouts.output`); may run in place when the two are the same. With
    /// `dropout`, times a channel dropout's mask [N, C] in the same pass.
    func forward(_ pass: Pass, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, plane: Int,
                 layouts: ConvolutionLayouts = .plain, dropout: UnsafePointer<Float>? = nil) {
        let scale = pass.folded + foldedOffset, shift = pass.folded + foldedOffset + channels
        FrozenBatchNorm.forwardReLU(input: input, output: output, scale: scale, shift: shift,
                                    batch: pass.batch, channels: channels, plane: plane, relu: relu, layouts: layouts,
                                    dropout: dropout)
    }

    /// The backward of `forward` with the dropout mask it took (nil: it took
    /// none, and this is the plain backward). With a mask, dy is first
    /// multiplied by it in place, as the dropout's own backward would, and then
    /// taken through the ReLU and the scale.
    func backward(_ pass: Pass, output: UnsafePointer<Float>, outputGradient: UnsafeMutablePointer<Float>,
                  droppedBy dropout: UnsafePointer<Float>?, inputGradient: UnsafeMutablePointer<Float>, plane: Int,
                  layouts: ConvolutionLayouts = .plain) {
        guard let dropout else {
            return backward(pass, output: output, outputGradient: outputGradient, inputGradient: inputGradient, plane: plane,
                            layouts: layouts)
        }
        precondition(relu, "\(name): a dropout follows a ReLU here")
        FrozenBatchNorm.backwardReLU(output: output, outputGradient: outputGradient, dropout: dropout, inputGradient: inputGradient,
                                     accumulate: false, scale: pass.folded + foldedOffset, batch: pass.batch, channels: channels,
                                     plane: plane, layouts: layouts)
    }

    /// inputGradient (+)= outputGradient * scale, where the output was positive
    /// when there is a ReLU (accumulating only then); may run in place.
    /// The output and its gradient lie in `layouts.output`, the input gradient in `layouts.input`.
    func backward(_ pass: Pass, output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                  inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool = false, plane: Int,
                  layouts: ConvolutionLayouts = .plain) {
        let scale = pass.folded + foldedOffset
        if relu {
            FrozenBatchNorm.backwardReLU(output: output, outputGradient: outputGradient, inputGradient: inputGradient,
                                         accumulate: accumulate, scale: scale, batch: pass.batch, channels: channels, plane: plane,
                                         layouts: layouts)
        } else {
            precondition(!accumulate, "\(name): an affine BN's gradient is written, not added")
            FrozenBatchNorm.backward(outputGradient: outputGradient, inputGradient: inputGradient, scale: scale,
                                     batch: pass.batch, channels: channels, plane: plane, layouts: layouts)
        }
    }

    /// output = relu(bn(input) + residual), all in `layout`: a bottleneck
    /// unit's last BatchNorm (no ReLU of its own) and the residual sum in one pass.
    func forwardAddingResidual(_ pass: Pass, input: UnsafePointer<Float>, residual: UnsafePointer<Float>,
                               output: UnsafeMutablePointer<Float>, plane: Int, layout: ActivationLayout) {
        precondition(!relu, "\(name): the residual sum takes the ReLU")
        FrozenBatchNorm.forwardAddingResidual(input: input, residual: residual, output: output, scale: pass.folded + foldedOffset,
                                              shift: pass.folded + foldedOffset + channels, batch: pass.batch,
                                              channels: channels, plane: plane, layout: layout)
    }

    /// The backward of `forwardAddingResidual` from its output: the sum's
    /// gradient into `sumGradient` (may be dy's memory) and this BatchNorm
    /// input's into `inputGradient`.
    func backwardThroughResidual(_ pass: Pass, output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                 sumGradient: UnsafeMutablePointer<Float>, inputGradient: UnsafeMutablePointer<Float>,
                                 plane: Int, layout: ActivationLayout) {
        FrozenBatchNorm.backwardThroughResidual(output: output, outputGradient: outputGradient, sumGradient: sumGradient,
                                                normGradient: inputGradient, scale: pass.folded + foldedOffset, batch: pass.batch,
                                                channels: channels, plane: plane, layout: layout)
    }
}
