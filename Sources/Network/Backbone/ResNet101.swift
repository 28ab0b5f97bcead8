import Kernels

/// ResNet-101 as DeepLab-v2 builds it (deeplab-v2.md section 1): the Caffe
/// stem (7x7/2 conv, BN, ReLU, 3x3/2 ceil-mode max-pool), then layers 2..5
/// of [3, 4, 23, 3] post-activation bottlenecks, stride 2 on layer 3's first
/// 1x1, dilation 2 in layer 4 and 4 in layer 5: output stride 8. BatchNorm is
/// frozen; every convolution trains, the stem's included.
struct ResNet101 {
    let stem: ConvBatchNorm
    let pool = MaxPoolGeometry(kernel: 3, stride: 2, padding: 1)
    let blocks: [ResidualBottleneck]
    let featureChannels: Int

    /// (layer, blocks, output channels, stride, dilation) of layers 2..5.
    static let layers = [(2, 3, 256, 1, 1), (3, 4, 512, 2, 1), (4, 23, 1024, 1, 2), (5, 3, 2048, 1, 4)]

    /// Registers the backbone under `prefix` ("base." in the MSC state dict),
    /// in the reference's state-dict order.
    init(widthDivisor d: Int, prefix: String, layout: inout ParameterStore.Layout, foldedCount: inout Int) {
        stem = ConvBatchNorm("\(prefix)layer1.conv1",
                             ConvolutionGeometry(inputChannels: 3, outputChannels: 64 / d, kernel: 7, stride: 2, padding: 3),
                             relu: true, foldedOffset: &foldedCount, layout: &layout)
        var blocks: [ResidualBottleneck] = []
        var channels = 64 / d
        for (layer, count, output, stride, dilation) in Self.layers {
            for b in 1...count {
                blocks.append(ResidualBottleneck("\(prefix)layer\(layer).block\(b)", input: channels, output: output / d,
                                                 stride: b == 1 ? stride : 1, dilation: dilation, projects: b == 1,
                                                 foldedOffset: &foldedCount, layout: &layout))
                channels = output / d
            }
        }
        self.blocks = blocks
        featureChannels = channels
    }

    var allUnits: [ConvBatchNorm] { [stem] + blocks.flatMap(\.units) }

    /// The stem's output size, then the pool's (deeplab-v2.md 1.6).
    func stemSizes(height: Int, width: Int) -> (conv: (height: Int, width: Int), pool: (height: Int, width: Int)) {
        let conv = stem.outputSize(height: height, width: width)
        return (conv, pool.outputSize(height: conv.height, width: conv.width))
    }

    /// The feature map's size: floor((n + 1) / 8) + 1 per axis.
    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        blocks.reduce(stemSizes(height: height, width: width).pool) { $1.outputSize(height: $0.height, width: $0.width) }
    }

    /// Multiply-accumulates of the convolutions for one image.
    func macs(height: Int, width: Int) -> Int {
        var total = stem.geometry.macs(height: height, width: width)
        var (h, w) = stemSizes(height: height, width: width).pool
        for block in blocks {
            total += block.unitInputs(height: h, width: w).reduce(0) { $0 + $1.unit.geometry.macs(height: $1.height, width: $1.width) }
            (h, w) = block.outputSize(height: h, width: w)
        }
        return total
    }

    /// He-uniform convolutions and identity BatchNorm, for training from
    /// scratch (tests, benchmarks); the reference starts from converted
    /// COCO weights instead. `residualBranchScale` scales each block's
    /// `increase`, as for ResNet-38: frozen BatchNorms cannot tame a fresh
    /// network's residual sums. The stem's bound is divided by 64: DeepLab's
    /// inputs are on the 0-255 scale (a standard deviation near 60), not near 1.
    func initialize(_ store: ParameterStore, seed: UInt64, residualBranchScale: Double) {
        let branchEnds = Set(blocks.map(\.increase.conv.weight))
        for (layer, unit) in allUnits.enumerated() {
            let scale = layer == 0 ? 1.0 / 64 : branchEnds.contains(unit.conv.weight) ? residualBranchScale : 1
            HeUniform.fill(store.pointer(unit.conv.weight), count: unit.geometry.weightCount, fanIn: unit.geometry.columnRows,
                           scale: scale, seed: seed, layer: layer)
            unit.norm.resetToIdentity(store)
        }
    }

    // MARK: Forward and backward

    /// Runs the backbone on `input` [N, 3, H, W]; the features end in
    /// `activations.features`. Returns their spatial size.
    @discardableResult
    func forward(_ pass: Pass, input: UnsafePointer<Float>, activations a: ResNet101Activations) -> (height: Int, width: Int) {
        let (height, width) = (a.height, a.width)
        let (conv, pooled) = stemSizes(height: height, width: width)
        stem.forward(pass, input: input, height: height, width: width, output: a.stemOutput)
        MaxPool.forward(pool, input: a.stemOutput, planes: pass.batch * stem.geometry.outputChannels,
                        height: conv.height, width: conv.width, output: a.pooled, winners: a.poolWinners)
        var x = UnsafePointer(a.pooled)
        var (h, w) = pooled
        let blocked = blockedBoundaries(pass, activations: a)
        for (index, block) in blocks.enumerated() {
            block.forward(pass, x: x, height: h, width: w, buffers: a.blocks[index], sum: a.sum,
                          boundaries: boundaries(of: index, blocked: blocked))
            x = UnsafePointer(a.blocks[index].output)
            (h, w) = block.outputSize(height: h, width: w)
        }
        return (h, w)
    }

    /// Backward from the gradient at the features (in `a.gradientA`), through
    /// every block and the stem into every convolution's weight gradient, and
    /// into `inputGradient` when given. `gradientsReady` hears, after each
    /// block, the start of the gradient-buffer tail that is final.
    func backward(_ pass: Pass, input: UnsafePointer<Float>, activations a: ResNet101Activations,
                  inputGradient: UnsafeMutablePointer<Float>?, gradientsReady: ((Int) -> Void)? = nil) {
        let dy = a.gradientA
        let blocked = blockedBoundaries(pass, activations: a)
        for index in stride(from: blocks.count - 1, through: 0, by: -1) {
            let (h, w) = a.blockInputSizes[index]
            let x = index == 0 ? UnsafePointer(a.pooled) : UnsafePointer(a.blocks[index - 1].output)
            blocks[index].backward(pass, x: x, dy: dy, height: h, width: w, buffers: a.blocks[index],
                                   scratch: a.gradientScratch, dx: dy, boundaries: boundaries(of: index, blocked: blocked))
            if let start = pass.store.entry(blocks[index].reduce.conv.weight).gradientOffset { gradientsReady?(start) }
        }
        let (conv, _) = stemSizes(height: a.height, width: a.width)
        MaxPool.backward(pool, outputGradient: dy, winners: a.poolWinners, planes: pass.batch * stem.geometry.outputChannels,
                         height: conv.height, width: conv.width, inputGradient: a.gradientB)
        stem.backward(pass, input: input, output: a.stemOutput, outputGradient: a.gradientB, normGradient: a.gradientB,
                      height: a.height, width: a.width, inputGradient: inputGradient)
        gradientsReady?(0)
    }
}

extension ResNet101 {
    /// Whether the tensors between blocks (from layer 2's first output to the
    /// features) are kept blocked: when every convolution exchanges blocked
    /// tensors at its size. The pooled stem output stays NCHW; the head that
    /// reads the features reads them in `featureLayout`.
    func blockedBoundaries(_ pass: Pass, activations a: ResNet101Activations) -> Bool {
        for (block, (h, w)) in zip(blocks, a.blockInputSizes) {
            for (unit, uh, uw) in block.unitInputs(height: h, width: w) where !unit.conv.exchangesBlocked(pass, height: uh, width: uw) {
                return false
            }
        }
        return true
    }

    /// The layouts of block `index`'s input and output.
    func boundaries(of index: Int, blocked: Bool) -> ConvolutionLayouts {
        let block = blocks[index]
        return ConvolutionLayouts(input: index == 0 ? .plain : .shared(channels: block.inputChannels, allBlocked: blocked),
                                  output: .shared(channels: block.outputChannels, allBlocked: blocked))
    }

    /// The features' layout (and their gradient's).
    func featureLayout(_ pass: Pass, activations a: ResNet101Activations) -> ActivationLayout {
        boundaries(of: blocks.count - 1, blocked: blockedBoundaries(pass, activations: a)).output
    }
}

/// One ResNet-101 pass's memory for an input of `batch` x 3 x `height` x
/// `width`: every block's activations (kept for backward) and, for
/// training, the gradient buffers the blocks share.
final class ResNet101Activations {
    let batch, height, width: Int
    let arena = Arena()
    let stemOutput, pooled: UnsafeMutablePointer<Float>
    let poolWinners: UnsafeMutablePointer<Int32>
    let blocks: [ResidualBuffers]
    let blockInputSizes: [(height: Int, width: Int)]
    /// Scratch for the `increase` output before the residual sum.
    let sum: UnsafeMutablePointer<Float>
    /// Training: ping-pong gradients sized for the largest activation, and the blocks' scratch.
    let gradientA, gradientB: UnsafeMutablePointer<Float>
    let gradientScratch: ResidualGradientScratch
    var features: UnsafeMutablePointer<Float> { blocks.last!.output }

    /// `keepsAll` false (inference) lets every block share one set of buffers.
    init(_ network: ResNet101, batch: Int, height: Int, width: Int, training: Bool) {
        self.batch = batch
        self.height = height
        self.width = width
        let (conv, pool) = network.stemSizes(height: height, width: width)
        let stemChannels = network.stem.geometry.outputChannels
        stemOutput = arena.floats(batch * stemChannels * conv.height * conv.width)
        pooled = arena.floats(batch * stemChannels * pool.height * pool.width)
        poolWinners = arena.indices(batch * stemChannels * pool.height * pool.width)
        var sizes: [(height: Int, width: Int)] = []
        var largest = stemChannels * conv.height * conv.width, largestMiddle = 1, largestOutput = 1
        var (h, w) = pool
        for block in network.blocks {
            sizes.append((h, w))
            let (outH, outW) = block.outputSize(height: h, width: w)
            largestMiddle = max(largestMiddle, block.middleChannels * outH * outW)
            largestOutput = max(largestOutput, block.outputChannels * outH * outW)
            largest = max(largest, block.inputChannels * h * w, block.outputChannels * outH * outW)
            (h, w) = (outH, outW)
        }
        blockInputSizes = sizes
        var blocks: [ResidualBuffers] = []
        if training {
            // Every block keeps r, m and y for backward.
            for (block, (h, w)) in zip(network.blocks, sizes) {
                let (outH, outW) = block.outputSize(height: h, width: w)
                blocks.append(ResidualBuffers(reduced: arena.floats(batch * block.middleChannels * outH * outW),
                                              middle: arena.floats(batch * block.middleChannels * outH * outW),
                                              output: arena.floats(batch * block.outputChannels * outH * outW)))
            }
        } else {
            // Forward only: r and m are shared; outputs alternate between two buffers.
            let reduced = arena.floats(batch * largestMiddle), middle = arena.floats(batch * largestMiddle)
            let outputs = [arena.floats(batch * largestOutput), arena.floats(batch * largestOutput)]
            for index in network.blocks.indices {
                blocks.append(ResidualBuffers(reduced: reduced, middle: middle, output: outputs[index % 2]))
            }
        }
        self.blocks = blocks
        sum = arena.floats(batch * largestOutput)
        let gradientCount = training ? batch * largest : 0
        gradientA = arena.floats(gradientCount)
        gradientB = arena.floats(gradientCount)
        gradientScratch = ResidualGradientScratch(sum: arena.floats(training ? batch * largestOutput : 0),
                                                  unit: arena.floats(training ? batch * max(largestOutput, largestMiddle) : 0),
                                                  middle: arena.floats(training ? batch * largestMiddle : 0))
    }
}
