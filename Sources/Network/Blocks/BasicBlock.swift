import Kernels

/// ResNet-38's pre-activation basic block (the reference's `ResBlock`):
///
///     p = relu(bn_branch2a(x))
///     y = conv_branch2b1(relu(bn_branch2b1(conv_branch2a(p)))) + (conv_branch1(p) or x)
///
/// The projection shortcut reads the pre-activated p; the identity reads raw x.
/// p and q pass only between convolutions and BatchNorms, so they are kept
/// blocked wherever the convolution engine exchanges blocked tensors.
struct BasicBlock {
    let name: String
    let inputChannels, middleChannels, outputChannels: Int
    let bn2a: BatchNormLayer
    let conv2a: Conv2D
    let bn2b1: BatchNormLayer
    let conv2b1: Conv2D
    let projection: Conv2D?
    /// p is a tap that other layers read in NCHW.
    let plainPreactivation: Bool

    init(_ name: String, input: Int, middle: Int, output: Int, stride: Int, firstDilation: Int, dilation: Int,
         trainable: Bool, plainPreactivation: Bool = false, foldedOffset: inout Int, layout: inout ParameterStore.Layout) {
        self.name = name
        self.plainPreactivation = plainPreactivation
        inputChannels = input
        middleChannels = middle
        outputChannels = output
        // Registration order = the reference's state-dict order.
        bn2a = BatchNormLayer("\(name).bn_branch2a", channels: input, foldedOffset: foldedOffset, layout: &layout)
        foldedOffset += 2 * input
        conv2a = Conv2D("\(name).conv_branch2a",
                        ConvolutionGeometry(inputChannels: input, outputChannels: middle, kernel: 3, stride: stride,
                                            padding: firstDilation, dilation: firstDilation),
                        trainable: trainable, layout: &layout)
        bn2b1 = BatchNormLayer("\(name).bn_branch2b1", channels: middle, foldedOffset: foldedOffset, layout: &layout)
        foldedOffset += 2 * middle
        conv2b1 = Conv2D("\(name).conv_branch2b1",
                         ConvolutionGeometry(inputChannels: middle, outputChannels: output, kernel: 3,
                                             padding: dilation, dilation: dilation),
                         trainable: trainable, layout: &layout)
        projection = (input == output && stride == 1) ? nil
            : Conv2D("\(name).conv_branch1",
                     ConvolutionGeometry(inputChannels: input, outputChannels: output, kernel: 1, stride: stride),
                     trainable: trainable, layout: &layout)
    }

    var batchNorms: [BatchNormLayer] { [bn2a, bn2b1] }
    var convolutions: [Conv2D] { [conv2a, conv2b1] + (projection.map { [$0] } ?? []) }

    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) { conv2a.outputSize(height: height, width: width) }

    /// The layouts of p (read by conv2a and the projection) and q (between conv2a and conv2b1).
    func layouts(_ pass: Pass, height: Int, width: Int) -> (p: ActivationLayout, q: ActivationLayout) {
        let (outH, outW) = outputSize(height: height, width: width)
        let first = conv2a.exchangesBlocked(pass, height: height, width: width)
        let p = !plainPreactivation && first && (projection?.exchangesBlocked(pass, height: height, width: width) ?? true)
        let q = first && conv2b1.exchangesBlocked(pass, height: outH, width: outW)
        return (.shared(channels: inputChannels, allBlocked: p), .shared(channels: middleChannels, allBlocked: q))
    }

    /// Runs the block on `x` [N, Cin, H, W]. The identity variant adds into x
    /// in place and returns it; the projection variant writes `spare`.
    func forward(_ pass: Pass, x: UnsafeMutablePointer<Float>, height: Int, width: Int,
                 buffers: BlockBuffers, spare: UnsafeMutablePointer<Float>, blockedBoundaries: Bool = false)
        -> UnsafeMutablePointer<Float> {
        let (outH, outW) = outputSize(height: height, width: width)
        let p = buffers.preactivation, q = buffers.middle
        let (lp, lq) = layouts(pass, height: height, width: width)
        let lx = ActivationLayout.shared(channels: inputChannels, allBlocked: blockedBoundaries)
        let ly = ActivationLayout.shared(channels: outputChannels, allBlocked: blockedBoundaries)
        bn2a.forward(pass, input: x, output: p, plane: height * width, layouts: .init(input: lx, output: lp))
        let y: UnsafeMutablePointer<Float>
        if let projection {
            projection.forward(pass, input: p, height: height, width: width, output: spare, layouts: .init(input: lp, output: ly))
            y = spare
        } else {
            y = x
        }
        conv2a.forward(pass, input: p, height: height, width: width, output: q, layouts: .init(input: lp, output: lq))
        bn2b1.forward(pass, input: q, output: q, plane: outH * outW, layouts: .init(input: lq, output: lq))
        conv2b1.forward(pass, input: q, height: outH, width: outW, output: y, accumulate: true,
                        layouts: .init(input: lq, output: ly))
        return y
    }

    /// Backward from dy [N, Cout, H', W']. Returns dx, or nil when the input
    /// gradient is not wanted. The identity variant adds into dy in place and
    /// returns it; the projection variant writes `spare`.
    func backward(_ pass: Pass, dy: UnsafeMutablePointer<Float>, height: Int, width: Int, buffers: BlockBuffers,
                  scratch: GradientScratch, spare: UnsafeMutablePointer<Float>, wantInputGradient: Bool,
                  preactivationGradient: UnsafePointer<Float>? = nil, blockedBoundaries: Bool = false)
        -> UnsafeMutablePointer<Float>? {
        let (outH, outW) = outputSize(height: height, width: width)
        let p = buffers.preactivation, q = buffers.middle
        let dq = scratch.middle, dp = scratch.preactivation
        let (lp, lq) = layouts(pass, height: height, width: width)
        let lx = ActivationLayout.shared(channels: inputChannels, allBlocked: blockedBoundaries)
        let ly = ActivationLayout.shared(channels: outputChannels, allBlocked: blockedBoundaries)
        conv2b1.backward(pass, input: q, outputGradient: dy, height: outH, width: outW, inputGradient: dq,
                         layouts: .init(input: lq, output: ly))
        bn2b1.backward(pass, output: q, outputGradient: dq, inputGradient: dq, plane: outH * outW,
                       layouts: .init(input: lq, output: lq))
        conv2a.backward(pass, input: p, outputGradient: dq, height: height, width: width,
                        inputGradient: wantInputGradient ? dp : nil, layouts: .init(input: lp, output: lq))
        projection?.backward(pass, input: p, outputGradient: dy, height: height, width: width,
                             inputGradient: wantInputGradient ? dp : nil, accumulate: true, layouts: .init(input: lp, output: ly))
        guard wantInputGradient else { return nil }
        if let preactivationGradient {
            // A tap (AffinityNet's conv4, conv5) reads p: its gradient joins p's here.
            precondition(lp == .plain, "\(name): a tapped pre-activation is kept in NCHW")
            let count = pass.batch * inputChannels * height * width
            for i in 0..<count { dp[i] += preactivationGradient[i] }
        }
        if projection != nil {
            bn2a.backward(pass, output: p, outputGradient: dp, inputGradient: spare, plane: height * width,
                          layouts: .init(input: lx, output: lp))
            return spare
        }
        bn2a.backward(pass, output: p, outputGradient: dp, inputGradient: dy, accumulate: true, plane: height * width,
                      layouts: .init(input: lx, output: lp))
        return dy
    }
}
