import Kernels

/// ResNet-38's pre-activation bottleneck with channel dropout (the
/// reference's `ResBlock_bot`, blocks b6 and b7):
///
///     p = relu(bn_branch2a(x))
///     u = conv_branch2b1(drop(relu(bn_branch2b1(conv_branch2a(p)))))
///     y = conv_branch2b2(drop(relu(bn_branch2b2(u)))) + conv_branch1(p)
struct BottleneckBlock {
    let name: String
    let inputChannels, outputChannels: Int
    let dropoutProbability: Double
    /// Keys of this block's two dropout layers in the counter-based RNG.
    let dropoutLayers: (Int, Int)
    let bn2a: BatchNormLayer
    let conv2a: Conv2D
    let bn2b1: BatchNormLayer
    let conv2b1: Conv2D
    let bn2b2: BatchNormLayer
    let conv2b2: Conv2D
    let projection: Conv2D

    init(_ name: String, input: Int, output: Int, dilation: Int, dropout: Double, dropoutLayers: (Int, Int),
         foldedOffset: inout Int, layout: inout ParameterStore.Layout) {
        self.name = name
        inputChannels = input
        outputChannels = output
        dropoutProbability = dropout
        self.dropoutLayers = dropoutLayers
        let quarter = output / 4, half = output / 2
        bn2a = BatchNormLayer("\(name).bn_branch2a", channels: input, foldedOffset: foldedOffset, layout: &layout)
        foldedOffset += 2 * input
        conv2a = Conv2D("\(name).conv_branch2a", ConvolutionGeometry(inputChannels: input, outputChannels: quarter, kernel: 1),
                        trainable: true, layout: &layout)
        bn2b1 = BatchNormLayer("\(name).bn_branch2b1", channels: quarter, foldedOffset: foldedOffset, layout: &layout)
        foldedOffset += 2 * quarter
        conv2b1 = Conv2D("\(name).conv_branch2b1",
                         ConvolutionGeometry(inputChannels: quarter, outputChannels: half, kernel: 3,
                                             padding: dilation, dilation: dilation),
                         trainable: true, layout: &layout)
        bn2b2 = BatchNormLayer("\(name).bn_branch2b2", channels: half, foldedOffset: foldedOffset, layout: &layout)
        foldedOffset += 2 * half
        conv2b2 = Conv2D("\(name).conv_branch2b2", ConvolutionGeometry(inputChannels: half, outputChannels: output, kernel: 1),
                         trainable: true, layout: &layout)
        projection = Conv2D("\(name).conv_branch1", ConvolutionGeometry(inputChannels: input, outputChannels: output, kernel: 1),
                            trainable: true, layout: &layout)
    }

    var middleChannels: Int { outputChannels / 4 }
    var innerChannels: Int { outputChannels / 2 }
    var batchNorms: [BatchNormLayer] { [bn2a, bn2b1, bn2b2] }
    var convolutions: [Conv2D] { [conv2a, conv2b1, conv2b2, projection] }

    /// Runs the block on x [N, Cin, H, W] (stride 1: the size is kept) into `spare`.
    func forward(_ pass: Pass, x: UnsafeMutablePointer<Float>, height: Int, width: Int,
                 buffers: BlockBuffers, spare: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let plane = height * width
        let p = buffers.preactivation, q = buffers.middle, r = buffers.inner!
        bn2a.forward(pass, input: x, output: p, plane: plane)
        projection.forward(pass, input: p, height: height, width: width, output: spare)
        conv2a.forward(pass, input: p, height: height, width: width, output: q)
        bn2b1.forward(pass, input: q, output: q, plane: plane)
        if let dropout = pass.dropout, let mask = buffers.middleMask {
            ChannelDropout.drawMask(probability: dropoutProbability, context: dropout, layer: dropoutLayers.0,
                                    batch: pass.batch, channels: middleChannels, mask: mask)
            ChannelDropout.apply(mask: mask, to: q, batch: pass.batch, channels: middleChannels, plane: plane)
        }
        conv2b1.forward(pass, input: q, height: height, width: width, output: r)
        bn2b2.forward(pass, input: r, output: r, plane: plane)
        if let dropout = pass.dropout, let mask = buffers.innerMask {
            ChannelDropout.drawMask(probability: dropoutProbability, context: dropout, layer: dropoutLayers.1,
                                    batch: pass.batch, channels: innerChannels, mask: mask)
            ChannelDropout.apply(mask: mask, to: r, batch: pass.batch, channels: innerChannels, plane: plane)
        }
        conv2b2.forward(pass, input: r, height: height, width: width, output: spare, accumulate: true)
        return spare
    }

    /// Backward from dy; returns dx written to `spare`, or nil when not wanted.
    /// The ReLU masks come from the stored post-dropout activations: a dropped
    /// channel is zero there, and its gradient is zero through the dropout anyway.
    func backward(_ pass: Pass, dy: UnsafeMutablePointer<Float>, height: Int, width: Int, buffers: BlockBuffers,
                  scratch: GradientScratch, spare: UnsafeMutablePointer<Float>, wantInputGradient: Bool,
                  preactivationGradient: UnsafePointer<Float>? = nil)
        -> UnsafeMutablePointer<Float>? {
        let plane = height * width
        let p = buffers.preactivation, q = buffers.middle, r = buffers.inner!
        let dr = scratch.inner, dq = scratch.middle, dp = scratch.preactivation
        conv2b2.backward(pass, input: r, outputGradient: dy, height: height, width: width, inputGradient: dr)
        if pass.dropout != nil, let mask = buffers.innerMask {
            ChannelDropout.apply(mask: mask, to: dr, batch: pass.batch, channels: innerChannels, plane: plane)
        }
        bn2b2.backward(pass, output: r, outputGradient: dr, inputGradient: dr, plane: plane)
        conv2b1.backward(pass, input: q, outputGradient: dr, height: height, width: width, inputGradient: dq)
        if pass.dropout != nil, let mask = buffers.middleMask {
            ChannelDropout.apply(mask: mask, to: dq, batch: pass.batch, channels: middleChannels, plane: plane)
        }
        bn2b1.backward(pass, output: q, outputGradient: dq, inputGradient: dq, plane: plane)
        conv2a.backward(pass, input: p, outputGradient: dq, height: height, width: width,
                        inputGradient: wantInputGradient ? dp : nil)
        projection.backward(pass, input: p, outputGradient: dy, height: height, width: width,
                            inputGradient: wantInputGradient ? dp : nil, accumulate: true)
        guard wantInputGradient else { return nil }
        if let preactivationGradient {
            // A tap (AffinityNet's conv4, conv5) reads p: its gradient joins p's here.
            let count = pass.batch * inputChannels * height * width
            for i in 0..<count { dp[i] += preactivationGradient[i] }
        }
        bn2a.backward(pass, output: p, outputGradient: dp, inputGradient: spare, plane: plane)
        return spare
    }
}
