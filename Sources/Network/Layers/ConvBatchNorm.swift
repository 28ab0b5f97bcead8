import Kernels

/// DeepLab's `_ConvBnReLU` unit: a bias-free convolution, a frozen BatchNorm
/// and, unless `relu` is false, a ReLU; named `{name}.conv.weight` and
/// `{name}.bn.*` as in the reference's state dict.
struct ConvBatchNorm {
    let conv: Conv2D
    let norm: BatchNormLayer

    init(_ name: String, _ geometry: ConvolutionGeometry, relu: Bool, foldedOffset: inout Int,
         layout: inout ParameterStore.Layout) {
        conv = Conv2D("\(name).conv", geometry, trainable: true, layout: &layout)
        norm = BatchNormLayer("\(name).bn", channels: geometry.outputChannels, relu: relu, foldedOffset: foldedOffset, layout: &layout)
        foldedOffset += 2 * geometry.outputChannels
    }

    var geometry: ConvolutionGeometry { conv.geometry }

    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) { conv.outputSize(height: height, width: width) }

    /// output = [relu](bn(conv(input))), at the convolution's output size;
    /// the input in `layouts.input`, the output (BatchNorm in place) in `layouts.output`.
    func forward(_ pass: Pass, input: UnsafePointer<Float>, height: Int, width: Int, output: UnsafeMutablePointer<Float>,
                 layouts: ConvolutionLayouts = .plain) {
        conv.forward(pass, input: input, height: height, width: width, output: output, layouts: layouts)
        let (outH, outW) = outputSize(height: height, width: width)
        norm.forward(pass, input: output, output: output, plane: outH * outW,
                     layouts: .init(input: layouts.output, output: layouts.output))
    }

    /// From the unit's output and its gradient: the convolution's weight
    /// gradient and, when wanted, the input gradient (added with `accumulate`).
    /// `normGradient` receives the gradient before the BatchNorm; it may be
    /// `outputGradient`'s own buffer.
    func backward(_ pass: Pass, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                  outputGradient: UnsafePointer<Float>, normGradient: UnsafeMutablePointer<Float>, height: Int, width: Int,
                  inputGradient: UnsafeMutablePointer<Float>?, accumulate: Bool = false, layouts: ConvolutionLayouts = .plain) {
        let (outH, outW) = outputSize(height: height, width: width)
        norm.backward(pass, output: output, outputGradient: outputGradient, inputGradient: normGradient, plane: outH * outW,
                      layouts: .init(input: layouts.output, output: layouts.output))
        conv.backward(pass, input: input, outputGradient: normGradient, height: height, width: width,
                      inputGradient: inputGradient, accumulate: accumulate, layouts: layouts)
    }
}
