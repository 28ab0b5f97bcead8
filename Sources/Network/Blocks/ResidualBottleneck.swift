import Kernels

/// ResNet-101's post-activation bottleneck, as the DeepLab reference (and
/// Caffe's MSRA ResNet) builds it, the stride on the first 1x1:
///
///     r = relu(bn(reduce₁ₓ₁,ₛ(x)))
///     m = relu(bn(conv3x3_d(r)))
///     y = relu(bn(increase₁ₓ₁(m)) + (block 1 ? bn(shortcut₁ₓ₁,ₛ(x)) : x))
///
/// r and m pass only between convolutions and BatchNorms, so they are kept
/// blocked wherever the convolution engine exchanges blocked tensors.
struct ResidualBottleneck {
    let name: String
    let inputChannels, middleChannels, outputChannels: Int
    let reduce, conv3x3, increase: ConvBatchNorm
    let shortcut: ConvBatchNorm?

    init(_ name: String, input: Int, output: Int, stride: Int, dilation: Int, projects: Bool,
         foldedOffset: inout Int, layout: inout ParameterStore.Layout) {
        self.name = name
        inputChannels = input
        outputChannels = output
        middleChannels = output / 4
        let middle = output / 4
        reduce = ConvBatchNorm("\(name).reduce", ConvolutionGeometry(inputChannels: input, outputChannels: middle, kernel: 1, stride: stride),
                               relu: true, foldedOffset: &foldedOffset, layout: &layout)
        conv3x3 = ConvBatchNorm("\(name).conv3x3",
                                ConvolutionGeometry(inputChannels: middle, outputChannels: middle, kernel: 3, padding: dilation, dilation: dilation),
                                relu: true, foldedOffset: &foldedOffset, layout: &layout)
        increase = ConvBatchNorm("\(name).increase", ConvolutionGeometry(inputChannels: middle, outputChannels: output, kernel: 1),
                                 relu: false, foldedOffset: &foldedOffset, layout: &layout)
        shortcut = projects
            ? ConvBatchNorm("\(name).shortcut", ConvolutionGeometry(inputChannels: input, outputChannels: output, kernel: 1, stride: stride),
                            relu: false, foldedOffset: &foldedOffset, layout: &layout)
            : nil
    }

    var units: [ConvBatchNorm] { [reduce, conv3x3, increase] + (shortcut.map { [$0] } ?? []) }

    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) { reduce.outputSize(height: height, width: width) }

    /// Each unit with the spatial size of its input.
    func unitInputs(height: Int, width: Int) -> [(unit: ConvBatchNorm, height: Int, width: Int)] {
        let (outH, outW) = outputSize(height: height, width: width)
        return units.map { unit in
            unit.conv.name == reduce.conv.name || unit.conv.name == shortcut?.conv.name ? (unit, height, width) : (unit, outH, outW)
        }
    }

    /// The layouts of r (between reduce and conv3x3) and m (between conv3x3 and increase).
    func layouts(_ pass: Pass, height: Int, width: Int) -> (reduced: ActivationLayout, middle: ActivationLayout) {
        let (outH, outW) = outputSize(height: height, width: width)
        let first = reduce.conv.exchangesBlocked(pass, height: height, width: width)
        let second = conv3x3.conv.exchangesBlocked(pass, height: outH, width: outW)
        let third = increase.conv.exchangesBlocked(pass, height: outH, width: outW)
        return (.shared(channels: middleChannels, allBlocked: first && second),
                .shared(channels: middleChannels, allBlocked: second && third))
    }

    /// Runs the block on x into `buffers.output`; `sum` is scratch of the output's
    /// size. x lies in `boundaries.input`, the output (and `sum`) in `boundaries.output`.
    func forward(_ pass: Pass, x: UnsafePointer<Float>, height: Int, width: Int, buffers: ResidualBuffers,
                 sum: UnsafeMutablePointer<Float>, boundaries: ConvolutionLayouts = .plain) {
        let (outH, outW) = outputSize(height: height, width: width)
        let (lr, lm) = layouts(pass, height: height, width: width)
        reduce.forward(pass, input: x, height: height, width: width, output: buffers.reduced,
                       layouts: .init(input: boundaries.input, output: lr))
        conv3x3.forward(pass, input: buffers.reduced, height: outH, width: outW, output: buffers.middle,
                        layouts: .init(input: lr, output: lm))
        increase.conv.forward(pass, input: buffers.middle, height: outH, width: outW, output: sum,
                              layouts: .init(input: lm, output: boundaries.output))
        let residual: UnsafePointer<Float>
        if let shortcut {
            shortcut.forward(pass, input: x, height: height, width: width, output: buffers.output, layouts: boundaries)
            residual = UnsafePointer(buffers.output)
        } else {
            precondition(boundaries.input == boundaries.output, "\(name): the identity shortcut keeps its layout")
            residual = x
        }
        increase.norm.forwardAddingResidual(pass, input: sum, residual: residual, output: buffers.output, plane: outH * outW,
                                            layout: boundaries.output)
    }

    /// Backward from dy, the gradient at the block's output, into `dx` (when
    /// wanted; it may be dy's own buffer, read first). Weight gradients of all units.
    func backward(_ pass: Pass, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, height: Int, width: Int,
                  buffers: ResidualBuffers, scratch: ResidualGradientScratch, dx: UnsafeMutablePointer<Float>?,
                  boundaries: ConvolutionLayouts = .plain) {
        let (outH, outW) = outputSize(height: height, width: width)
        let dUnit = scratch.unit, dMiddle = scratch.middle
        let (lr, lm) = layouts(pass, height: height, width: width)
        // The sum's gradient is the identity shortcut's input gradient as it stands: written straight into dx.
        let dSum = shortcut == nil ? dx ?? scratch.sum : scratch.sum
        increase.norm.backwardThroughResidual(pass, output: buffers.output, outputGradient: dy, sumGradient: dSum,
                                              inputGradient: dUnit, plane: outH * outW, layout: boundaries.output)
        increase.conv.backward(pass, input: buffers.middle, outputGradient: dUnit, height: outH, width: outW,
                               inputGradient: dMiddle, layouts: .init(input: lm, output: boundaries.output))
        if let shortcut {
            shortcut.backward(pass, input: x, output: dSum, outputGradient: dSum, normGradient: dUnit,
                              height: height, width: width, inputGradient: dx, layouts: boundaries)
        }
        // dUnit, the shortcut's scratch above, now holds r's gradient, in r's layout.
        conv3x3.backward(pass, input: buffers.reduced, output: buffers.middle, outputGradient: dMiddle, normGradient: dMiddle,
                         height: outH, width: outW, inputGradient: dUnit, layouts: .init(input: lr, output: lm))
        reduce.backward(pass, input: x, output: buffers.reduced, outputGradient: dUnit, normGradient: dUnit,
                        height: height, width: width, inputGradient: dx, accumulate: dx != nil,
                        layouts: .init(input: boundaries.input, output: lr))
    }
}

/// What one ResNet-101 block keeps for backward: both inner activations and its output.
struct ResidualBuffers {
    var reduced: UnsafeMutablePointer<Float>
    var middle: UnsafeMutablePointer<Float>
    var output: UnsafeMutablePointer<Float>
}

/// Gradient scratch every ResNet-101 block shares in backward.
struct ResidualGradientScratch {
    /// The gradient at the residual sum (after the last ReLU).
    let sum: UnsafeMutablePointer<Float>
    /// A unit's output gradient, turned into its pre-BatchNorm gradient.
    let unit: UnsafeMutablePointer<Float>
    /// The gradient at m, conv3x3's output.
    let middle: UnsafeMutablePointer<Float>
}
