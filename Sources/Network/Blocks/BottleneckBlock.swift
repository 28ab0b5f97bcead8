import Kernels

/// ResNet-38's pre-activation bottleneck with channel dropout (the
/// reference's `ResBlock_bot`, blocks b6 and b7):
///
///     p = relu(bn_branch2a(x))
///     u = conv_branch2b1(drop(relu(bn_branch2b1(conv_branch2a(p)))))
///     y = conv_branch2b2(drop(relu(bn_branch2b2(u)))) + conv_branch1(p)
///
/// p, q (the middle) and r (the inner) are kept blocked wherever the
/// convolution engine exchanges blocked tensors.
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
    /// p is a tap that other layers read in NCHW.
    let plainPreactivation: Bool

    init(_ name: String, input: Int, output: Int, dilation: Int, dropout: Double, dropoutLayers: (Int, Int),
         plainPreactivation: Bool = false, foldedOffset: inout Int, layout: inout ParameterStore.Layout) {
        self.name = name
        self.plainPreactivation = plainPreactivation
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

    /// The layouts of p (read by conv2a and the projection), q (conv2a to conv2b1) and r (conv2b1 to conv2b2).
    func layouts(_ pass: Pass, height: Int, width: Int) -> (p: ActivationLayout, q: ActivationLayout, r: ActivationLayout) {
        let first = conv2a.exchangesBlocked(pass, height: height, width: width)
        let middle = conv2b1.exchangesBlocked(pass, height: height, width: width)
        let p = !plainPreactivation && first && projection.exchangesBlocked(pass, height: height, width: width)
        let r = middle && conv2b2.exchangesBlocked(pass, height: height, width: width)
        return (.shared(channels: inputChannels, allBlocked: p), .shared(channels: middleChannels, allBlocked: first && middle),
                .shared(channels: innerChannels, allBlocked: r))
    }

    /// Runs the block on x [N, Cin, H, W] (stride 1: the size is kept) into `spare`.
    func forward(_ pass: Pass, x: UnsafeMutablePointer<Float>, height: Int, width: Int,
                 buffers: BlockBuffers, spare: UnsafeMutablePointer<Float>, blockedBoundaries: Bool = false)
        -> UnsafeMutablePointer<Float> {
        let plane = height * width
        let p = buffers.preactivation, q = buffers.middle, r = buffers.inner!
        let (lp, lq, lr) = layouts(pass, height: height, width: width)
        let lx = ActivationLayout.shared(channels: inputChannels, allBlocked: blockedBoundaries)
        let ly = ActivationLayout.shared(channels: outputChannels, allBlocked: blockedBoundaries)
        bn2a.forward(pass, input: x, output: p, plane: plane, layouts: .init(input: lx, output: lp))
        projection.forward(pass, input: p, height: height, width: width, output: spare, layouts: .init(input: lp, output: ly))
        conv2a.forward(pass, input: p, height: height, width: width, output: q, layouts: .init(input: lp, output: lq))
        // Each dropout rides on the BN-ReLU before it, slab by slab while the slab is in the cache.
        bn2b1.forward(pass, input: q, output: q, plane: plane, layouts: .init(input: lq, output: lq),
                      dropout: drawnMask(pass, buffers.middleMask, layer: dropoutLayers.0, channels: middleChannels))
        conv2b1.forward(pass, input: q, height: height, width: width, output: r, layouts: .init(input: lq, output: lr))
        bn2b2.forward(pass, input: r, output: r, plane: plane, layouts: .init(input: lr, output: lr),
                      dropout: drawnMask(pass, buffers.innerMask, layer: dropoutLayers.1, channels: innerChannels))
        conv2b2.forward(pass, input: r, height: height, width: width, output: spare, accumulate: true,
                        layouts: .init(input: lr, output: ly))
        return spare
    }

    /// This pass's dropout mask for one of the block's two dropout layers,
    /// drawn into `mask`; nil when the pass runs no dropout.
    private func drawnMask(_ pass: Pass, _ mask: UnsafeMutablePointer<Float>?, layer: Int, channels: Int) -> UnsafePointer<Float>? {
        guard let dropout = pass.dropout, let mask else { return nil }
        ChannelDropout.drawMask(probability: dropoutProbability, context: dropout, layer: layer, batch: pass.batch, channels: channels,
                                mask: mask)
        return UnsafePointer(mask)
    }

    /// The mask a dropout layer drew in this pass's forward, or nil when the pass runs no dropout.
    private func drawn(_ pass: Pass, _ mask: UnsafeMutablePointer<Float>?) -> UnsafePointer<Float>? {
        pass.dropout == nil ? nil : mask.map { UnsafePointer($0) }
    }

    /// Backward from dy; returns dx written to `spare`, or nil when not wanted.
    /// The ReLU masks come from the stored post-dropout activations: a dropped
    /// channel is zero there, and its gradient is zero through the dropout anyway.
    func backward(_ pass: Pass, dy: UnsafeMutablePointer<Float>, height: Int, width: Int, buffers: BlockBuffers,
                  scratch: GradientScratch, spare: UnsafeMutablePointer<Float>, wantInputGradient: Bool,
                  preactivationGradient: UnsafePointer<Float>? = nil, blockedBoundaries: Bool = false)
        -> UnsafeMutablePointer<Float>? {
        let plane = height * width
        let p = buffers.preactivation, q = buffers.middle, r = buffers.inner!
        let dr = scratch.inner, dq = scratch.middle, dp = scratch.preactivation
        let (lp, lq, lr) = layouts(pass, height: height, width: width)
        let lx = ActivationLayout.shared(channels: inputChannels, allBlocked: blockedBoundaries)
        let ly = ActivationLayout.shared(channels: outputChannels, allBlocked: blockedBoundaries)
        conv2b2.backward(pass, input: r, outputGradient: dy, height: height, width: width, inputGradient: dr,
                         layouts: .init(input: lr, output: ly))
        bn2b2.backward(pass, output: r, outputGradient: dr, droppedBy: drawn(pass, buffers.innerMask), inputGradient: dr, plane: plane,
                       layouts: .init(input: lr, output: lr))
        conv2b1.backward(pass, input: q, outputGradient: dr, height: height, width: width, inputGradient: dq,
                         layouts: .init(input: lq, output: lr))
        bn2b1.backward(pass, output: q, outputGradient: dq, droppedBy: drawn(pass, buffers.middleMask), inputGradient: dq, plane: plane,
                       layouts: .init(input: lq, output: lq))
        conv2a.backward(pass, input: p, outputGradient: dq, height: height, width: width,
                        inputGradient: wantInputGradient ? dp : nil, layouts: .init(input: lp, output: lq))
        projection.backward(pass, input: p, outputGradient: dy, height: height, width: width,
                            inputGradient: wantInputGradient ? dp : nil, accumulate: true, layouts: .init(input: lp, output: ly))
        guard wantInputGradient else { return nil }
        if let preactivationGradient {
            // A tap (AffinityNet's conv4, conv5) reads p: its gradient joins p's here.
            precondition(lp == .plain, "\(name): a tapped pre-activation is kept in NCHW")
            let count = pass.batch * inputChannels * height * width
            for i in 0..<count { dp[i] += preactivationGradient[i] }
        }
        bn2a.backward(pass, output: p, outputGradient: dp, inputGradient: spare, plane: plane,
                      layouts: .init(input: lx, output: lp))
        return spare
    }
}
