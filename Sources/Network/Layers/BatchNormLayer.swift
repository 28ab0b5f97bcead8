import Kernels

/// A frozen BatchNorm followed by a ReLU (every BN of ResNet-38 is). Its four
/// tensors keep the reference's names; the folded scale and shift live in the
/// network's `foldedAffine` buffer at `foldedOffset`.
struct BatchNormReLU {
    let name: String
    let channels: Int
    let weight, bias, runningMean, runningVariance: ParameterID
    let foldedOffset: Int

    init(_ name: String, channels: Int, foldedOffset: Int, layout: inout ParameterStore.Layout) {
        self.name = name
        self.channels = channels
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

    /// output = relu(bn(input)); may run in place.
    func forward(_ pass: Pass, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, plane: Int) {
        FrozenBatchNorm.forwardReLU(input: input, output: output,
                                    scale: pass.folded + foldedOffset, shift: pass.folded + foldedOffset + channels,
                                    batch: pass.batch, channels: channels, plane: plane)
    }

    /// inputGradient (+)= outputGradient * scale where the output was positive; may run in place.
    func backward(_ pass: Pass, output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                  inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool = false, plane: Int) {
        FrozenBatchNorm.backwardReLU(output: output, outputGradient: outputGradient, inputGradient: inputGradient,
                                     accumulate: accumulate, scale: pass.folded + foldedOffset,
                                     batch: pass.batch, channels: channels, plane: plane)
    }
}
