import Kernels

/// ResNet-38's pre-activation basic block (the reference's `ResBlock`):
///
///     p = relu(bn_branch2a(x))
///     y = conv_branch2b1(relu(bn_branch2b1(conv_branch2a(p)))) + (conv_branch1(p) or x)
///
/// The projection shortcut reads the pre-activated p; the identity reads raw x.
struct BasicBlock {
    let name: String
    let inputChannels, middleChannels, outputChannels: Int
    let bn2a: BatchNormLayer
    let conv2a: Conv2D
    let bn2b1: BatchNormLayer
    let conv2b1: Conv2D
    let projection: Conv2D?

    init(_ name: String, input: Int, middle: Int, output: Int, stride: Int, firstDilation: Int, dilation: Int,
         trainable: Bool, foldedOffset: inout Int, layout: inout ParameterStore.Layout) {
        self.name = name
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

    /// Runs the block on `x` [N, Cin, H, W]. The identity variant adds into x
    /// in place and returns it; the projection variant writes `spare`.
    func forward(_ pass: Pass, x: UnsafeMutablePointer<Float>, height: Int, width: Int,
                 buffers: BlockBuffers, spare: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let (outH, outW) = outputSize(height: height, width: width)
        let p = buffers.preactivation, q = buffers.middle
        bn2a.forward(pass, input: x, output: p, plane: height * width)
        let y: UnsafeMutablePointer<Float>
        if let projection {
            projection.forward(pass, input: p, height: height, width: width, output: spare)
            y = spare
        } else {
            y = x
        }
        conv2a.forward(pass, input: p, height: height, width: width, output: q)
        bn2b1.forward(pass, input: q, output: q, plane: outH * outW)
        conv2b1.forward(pass, input: q, height: outH, width: outW, output: y, accumulate: true)
        return y
    }

    /// Backward from dy [N, Cout, H', W']. Returns dx, or nil when the input
    /// gradient is not wanted. The identity variant adds into dy in place and
    /// returns it; the projection variant writes `spare`.
    func backward(_ pass: Pass, dy: UnsafeMutablePointer<Float>, height: Int, width: Int, buffers: BlockBuffers,
                  scratch: GradientScratch, spare: UnsafeMutablePointer<Float>, wantInputGradient: Bool,
                  preactivationGradient: UnsafePointer<Float>? = nil)
        -> UnsafeMutablePointer<Float>? {
        let (outH, outW) = outputSize(height: height, width: width)
        let p = buffers.preactivation, q = buffers.middle
        let dq = scratch.middle, dp = scratch.preactivation
        conv2b1.backward(pass, input: q, outputGradient: dy, height: outH, width: outW, inputGradient: dq)
        bn2b1.backward(pass, output: q, outputGradient: dq, inputGradient: dq, plane: outH * outW)
        conv2a.backward(pass, input: p, outputGradient: dq, height: height, width: width,
                        inputGradient: wantInputGradient ? dp : nil)
        projection?.backward(pass, input: p, outputGradient: dy, height: height, width: width,
                             inputGradient: wantInputGradient ? dp : nil, accumulate: true)
        guard wantInputGradient else { return nil }
        if let preactivationGradient {
            // A tap (AffinityNet's conv4, conv5) reads p: its gradient joins p's here.
            let count = pass.batch * inputChannels * height * width
            for i in 0..<count { dp[i] += preactivationGradient[i] }
        }
        if projection != nil {
            bn2a.backward(pass, output: p, outputGradient: dp, inputGradient: spare, plane: height * width)
            return spare
        }
        bn2a.backward(pass, output: p, outputGradient: dp, inputGradient: dy, accumulate: true, plane: height * width)
        return dy
    }
}
