import Kernels

/// One classification head: a bias-free 1x1 convolution from the pooled
/// feature (or, for CAMs, from every position of conv6) to `classes` scores.
public struct ClassifierHead: Sendable {
    public let name: String
    public let classes: Int
    let weight: ParameterID
}

enum Block {
    case basic(BasicBlock)
    case bottleneck(BottleneckBlock)

    var name: String {
        switch self {
        case .basic(let block): return block.name
        case .bottleneck(let block): return block.name
        }
    }

    var batchNorms: [BatchNormReLU] {
        switch self {
        case .basic(let block): return block.batchNorms
        case .bottleneck(let block): return block.batchNorms
        }
    }

    var convolutions: [Conv2D] {
        switch self {
        case .basic(let block): return block.convolutions
        case .bottleneck(let block): return block.convolutions
        }
    }

    /// The last convolution of the residual branch, whose output is added to the shortcut.
    var branchEnd: Conv2D {
        switch self {
        case .basic(let block): return block.conv2b1
        case .bottleneck(let block): return block.conv2b2
        }
    }

    var inputChannels: Int {
        switch self {
        case .basic(let block): return block.inputChannels
        case .bottleneck(let block): return block.inputChannels
        }
    }

    var outputChannels: Int {
        switch self {
        case .basic(let block): return block.outputChannels
        case .bottleneck(let block): return block.outputChannels
        }
    }

    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        switch self {
        case .basic(let block): return block.outputSize(height: height, width: width)
        case .bottleneck: return (height, width)
        }
    }

    /// Each convolution with the spatial size of its input: the convolutions
    /// after conv_branch2a run at the block's output size.
    func convolutionInputs(height: Int, width: Int) -> [(conv: Conv2D, height: Int, width: Int)] {
        let (outH, outW) = outputSize(height: height, width: width)
        return convolutions.map { conv in
            conv.name.hasSuffix("conv_branch2b1") || conv.name.hasSuffix("conv_branch2b2") ? (conv, outH, outW) : (conv, height, width)
        }
    }
}

/// ResNet-38 ("resnet38d") with the SC-CAM classification heads, exactly as
/// the reference defines them, with explicit forward and backward passes.
///
/// BatchNorm is frozen everywhere; conv1a and the b2 stage are frozen; the
/// convolutions of b3..b7 and the heads train. The layer order, key names and
/// shapes are those of the reference's state dict.
public final class SCCAMNetwork {
    public let configuration: NetworkConfiguration
    public let store: ParameterStore
    public let heads: [ClassifierHead]

    let conv1a: Conv2D
    let blocks: [Block]
    let bn7: BatchNormReLU
    /// Index in `blocks` of b3, the first block that trains.
    static let firstTrainableBlock = 3
    /// Keys of dropout7 in the counter-based RNG (b6 uses 1 and 2, b7 3 and 4).
    static let headDropoutLayer = 5
    static let headDropoutProbability = 0.5

    /// Where each block's weight gradients start in `store.gradients` (nil for frozen blocks).
    private let blockGradientStarts: [Int?]
    private let folded: UnsafeMutablePointer<Float>
    private var workspace: Workspace?
    /// Sizes of the last forward pass: each block's input, and conv6's.
    private var blockInputSizes: [(height: Int, width: Int)] = []
    private var lastInput: UnsafePointer<Float>?
    private var lastMode: Mode = .inference
    /// conv6's spatial size in the last forward pass.
    public private(set) var mapSize: (height: Int, width: Int) = (0, 0)

    public init(configuration: NetworkConfiguration) {
        self.configuration = configuration
        let d = configuration.widthDivisor
        func ch(_ c: Int) -> Int { c / d }
        var layout = ParameterStore.Layout()
        var foldedCount = 0
        conv1a = Conv2D("conv1a", ConvolutionGeometry(inputChannels: 3, outputChannels: ch(64), kernel: 3, padding: 1),
                        trainable: false, layout: &layout)
        var blocks: [Block] = []
        func basic(_ name: String, _ cin: Int, _ cmid: Int, _ cout: Int, stride: Int = 1,
                   firstDilation: Int = 1, dilation: Int = 1, trainable: Bool = true) {
            blocks.append(.basic(BasicBlock(name, input: ch(cin), middle: ch(cmid), output: ch(cout), stride: stride,
                                            firstDilation: firstDilation, dilation: dilation, trainable: trainable,
                                            foldedOffset: &foldedCount, layout: &layout)))
        }
        basic("b2", 64, 128, 128, stride: 2, trainable: false)
        basic("b2_1", 128, 128, 128, trainable: false)
        basic("b2_2", 128, 128, 128, trainable: false)
        basic("b3", 128, 256, 256, stride: 2)
        basic("b3_1", 256, 256, 256)
        basic("b3_2", 256, 256, 256)
        basic("b4", 256, 512, 512, stride: 2)
        for i in 1...5 { basic("b4_\(i)", 512, 512, 512) }
        basic("b5", 512, 512, 1024, firstDilation: 1, dilation: 2)
        basic("b5_1", 1024, 512, 1024, firstDilation: 2, dilation: 2)
        basic("b5_2", 1024, 512, 1024, firstDilation: 2, dilation: 2)
        blocks.append(.bottleneck(BottleneckBlock("b6", input: ch(1024), output: ch(2048), dilation: 4, dropout: 0.3,
                                                  dropoutLayers: (1, 2), foldedOffset: &foldedCount, layout: &layout)))
        blocks.append(.bottleneck(BottleneckBlock("b7", input: ch(2048), output: ch(4096), dilation: 4, dropout: 0.5,
                                                  dropoutLayers: (3, 4), foldedOffset: &foldedCount, layout: &layout)))
        self.blocks = blocks
        bn7 = BatchNormReLU("bn7", channels: ch(4096), foldedOffset: foldedCount, layout: &layout)
        foldedCount += 2 * ch(4096)
        let features = configuration.featureChannels
        if configuration.hasSubcategoryHead {
            let sub = configuration.subcategoryClasses
            heads = [
                ClassifierHead(name: "fc8_20", classes: NetworkConfiguration.parentClasses,
                               weight: layout.add("fc8_20.weight", shape: [NetworkConfiguration.parentClasses, features, 1, 1], trainable: true)),
                // The reference names it fc8_200 whatever k is.
                ClassifierHead(name: "fc8_200", classes: sub,
                               weight: layout.add("fc8_200.weight", shape: [sub, features, 1, 1], trainable: true)),
            ]
        } else {
            heads = [ClassifierHead(name: "fc8", classes: NetworkConfiguration.parentClasses,
                                    weight: layout.add("fc8.weight", shape: [NetworkConfiguration.parentClasses, features, 1, 1], trainable: true))]
        }
        store = ParameterStore(layout: layout)
        blockGradientStarts = blocks.map { block in
            block.convolutions.compactMap { conv in layout.entries[conv.weight.index].gradientOffset }.min()
        }
        folded = .allocate(capacity: foldedCount)
        folded.initialize(repeating: 0, count: foldedCount)
        // A freshly built network is usable: identity BN statistics, Xavier heads.
        for norm in allBatchNorms {
            store.pointer(norm.weight).update(repeating: 1, count: norm.channels)
            store.pointer(norm.runningVariance).update(repeating: 1, count: norm.channels)
        }
        initializeHeads(seed: 0)
    }

    deinit { folded.deallocate() }

    var allBatchNorms: [BatchNormReLU] { blocks.flatMap(\.batchNorms) + [bn7] }
    var allConvolutions: [Conv2D] { [conv1a] + blocks.flatMap(\.convolutions) }

    /// Names of the blocks, in forward order (b2 ... b7).
    public var blockNames: [String] { blocks.map(\.name) }

    /// Multiply-accumulates of the backbone's convolutions for one image.
    public func backboneMACs(height: Int, width: Int) -> (total: Int, trainable: Int) {
        var h = height, w = width
        var total = conv1a.geometry.macs(height: h, width: w), trainable = 0
        for (index, block) in blocks.enumerated() {
            let macs = block.convolutionInputs(height: h, width: w).reduce(0) { $0 + $1.conv.geometry.macs(height: $1.height, width: $1.width) }
            total += macs
            if index >= Self.firstTrainableBlock { trainable += macs }
            (h, w) = block.outputSize(height: h, width: w)
        }
        return (total, trainable)
    }

    /// Multiply-accumulates one training step executes per image: the whole
    /// forward, the weight gradients of every trainable convolution, and the
    /// input gradients down to (not into) b3's input.
    public func trainingMACs(height: Int, width: Int) -> Int {
        var h = height, w = width
        var total = conv1a.geometry.macs(height: h, width: w)
        for (index, block) in blocks.enumerated() {
            for (conv, inH, inW) in block.convolutionInputs(height: h, width: w) {
                let macs = conv.geometry.macs(height: inH, width: inW)
                total += macs
                guard index >= Self.firstTrainableBlock else { continue }
                total += macs  // weight gradient
                let skipsInputGradient = index == Self.firstTrainableBlock
                    && (conv.name.hasSuffix("conv_branch2a") || conv.name.hasSuffix("conv_branch1"))
                if !skipsInputGradient { total += macs }
            }
            (h, w) = block.outputSize(height: h, width: w)
        }
        return total
    }

    /// Xavier-uniform initialisation of the heads, as the reference does:
    /// U(-b, b) with b = sqrt(6 / (fan_in + fan_out)), fan_in = feature channels.
    public func initializeHeads(seed: UInt64) {
        let random = CounterRandom(seed: seed)
        for (headIndex, head) in heads.enumerated() {
            let fanIn = configuration.featureChannels
            let bound = (6.0 / Double(fanIn + head.classes)).squareRoot()
            let weight = store.pointer(head.weight)
            for i in 0..<(head.classes * fanIn) {
                let u = random.uniform(0x4845_4144, UInt64(headIndex), UInt64(i), 0)
                weight[i] = Float((2 * u - 1) * bound)
            }
        }
    }

    /// He-uniform initialisation of every backbone convolution, U(-b, b) with
    /// b = sqrt(6 / fan_in), and identity BatchNorm: for training from scratch
    /// (the demo, benchmarks, tests) where no ImageNet weights are loaded.
    ///
    /// `residualBranchScale` scales the last convolution of every residual
    /// branch. The BatchNorms are frozen at identity, so nothing renormalises
    /// the residual sums: at 1 their variance doubles block after block and a
    /// fresh network's logits are in the hundreds. A small scale starts each
    /// block near the identity, the usual remedy for training deep residual
    /// networks without normalisation.
    public func initializeBackbone(seed: UInt64, residualBranchScale: Double = 1) {
        let branchEnds = Set(blocks.map(\.branchEnd.weight))
        for (layer, conv) in allConvolutions.enumerated() {
            let scale = branchEnds.contains(conv.weight) ? residualBranchScale : 1
            let bound = (6.0 / Double(conv.geometry.columnRows)).squareRoot() * scale
            let weight = store.pointer(conv.weight)
            // One counter-keyed start per layer, then a sequential SplitMix64
            // stream: the same values whatever the thread or rank, and fast.
            var state = UInt64(CounterRandom(seed: seed).uniform(0x434F_4E56, UInt64(layer), 0, 0) * 0x1p53)
            for i in 0..<conv.geometry.weightCount {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                weight[i] = Float((2 * (Double(z >> 11) * 0x1p-53) - 1) * bound)
            }
        }
        for norm in allBatchNorms {
            store.pointer(norm.weight).update(repeating: 1, count: norm.channels)
            store.pointer(norm.bias).update(repeating: 0, count: norm.channels)
            store.pointer(norm.runningMean).update(repeating: 0, count: norm.channels)
            store.pointer(norm.runningVariance).update(repeating: 1, count: norm.channels)
        }
    }

    // MARK: Forward

    public enum Mode: Equatable {
        /// Eval mode: no dropout, nothing kept for backward.
        case inference
        /// Train mode: dropout drawn from `dropout` (nil = dropout off, as the
        /// golden gradients use); with `inputGradient` backward also returns
        /// d loss / d input, through the frozen stem.
        case training(dropout: DropoutContext?, inputGradient: Bool)
    }

    public struct Output {
        /// Per head, [N, classes] row-major.
        public let logits: [[Float]]
        /// The pooled feature [N, featureChannels] (after dropout7 in training).
        public let features: [Float]
    }

    /// Runs the classifier on a batch [N, 3, H, W] of normalised images.
    /// `observe` sees the output of conv1a, of every block, and conv6, named
    /// as in the reference, over the whole batch.
    @discardableResult
    public func forward(input: UnsafePointer<Float>, batch: Int, height: Int, width: Int, mode: Mode = .inference,
                        observe: ((String, UnsafeBufferPointer<Float>) -> Void)? = nil) -> Output {
        let purpose: Workspace.Purpose
        var dropout: DropoutContext? = nil
        switch mode {
        case .inference: purpose = .inference
        case .training(let context, let inputGradient):
            purpose = .training(inputGradient: inputGradient)
            dropout = context
        }
        let ws = prepareWorkspace(batch: batch, height: height, width: width, purpose: purpose)
        for norm in allBatchNorms { norm.fold(store: store, into: folded) }
        let pass = Pass(store: store, folded: folded, batch: batch, scratch: ws.scratch, dropout: dropout,
                        accumulateGradients: false)

        conv1a.forward(pass, input: input, height: height, width: width, output: ws.activationA)
        observe?("conv1a", UnsafeBufferPointer(start: ws.activationA, count: batch * conv1a.geometry.outputChannels * height * width))
        var x = ws.activationA!, spare = ws.activationB!
        var h = height, w = width
        for (index, block) in blocks.enumerated() {
            let y: UnsafeMutablePointer<Float>
            switch block {
            case .basic(let basic):
                y = basic.forward(pass, x: x, height: h, width: w, buffers: ws.blockBuffers[index], spare: spare)
            case .bottleneck(let bottleneck):
                y = bottleneck.forward(pass, x: x, height: h, width: w, buffers: ws.blockBuffers[index], spare: spare)
            }
            if y != x { spare = x }
            x = y
            (h, w) = block.outputSize(height: h, width: w)
            observe?(block.name, UnsafeBufferPointer(start: x, count: batch * block.outputChannels * h * w))
        }
        let channels = configuration.featureChannels, plane = h * w
        bn7.forward(pass, input: x, output: ws.conv6, plane: plane)
        observe?("conv6", UnsafeBufferPointer(start: ws.conv6, count: batch * channels * plane))
        if let dropout, let mask = ws.conv6Mask {
            ChannelDropout.drawMask(probability: Self.headDropoutProbability, context: dropout, layer: Self.headDropoutLayer,
                                    batch: batch, channels: channels, mask: mask)
            ChannelDropout.apply(mask: mask, to: ws.conv6, batch: batch, channels: channels, plane: plane)
        }
        GlobalAveragePool.forward(input: ws.conv6, output: ws.pooled, batch: batch, channels: channels, plane: plane)
        for (k, head) in heads.enumerated() {
            // logits [N, K] = pooled [N, C] * Wᵀ, W = [K, C]
            sgemm(transposeA: false, transposeB: true, m: batch, n: head.classes, k: channels, alpha: 1,
                  a: ws.pooled, lda: channels, b: store.pointer(head.weight), ldb: channels,
                  beta: 0, c: ws.logits[k], ldc: head.classes)
        }
        mapSize = (h, w)
        lastInput = input
        lastMode = mode
        return Output(logits: heads.enumerated().map { Array(UnsafeBufferPointer(start: ws.logits[$0.offset], count: batch * $0.element.classes)) },
                      features: Array(UnsafeBufferPointer(start: ws.pooled, count: batch * channels)))
    }

    /// Class activation maps of the last forward pass, for head `headIndex`:
    /// relu(W * conv6) at every position, [N, classes, h, w]. Meaningful after
    /// an inference forward (no dropout on conv6).
    public func classActivationMaps(head headIndex: Int) -> [Float] {
        guard let ws = workspace else { preconditionFailure("classActivationMaps needs a forward pass first") }
        let head = heads[headIndex]
        let batch = ws.key.batch, channels = configuration.featureChannels, plane = mapSize.height * mapSize.width
        var maps = [Float](repeating: 0, count: batch * head.classes * plane)
        maps.withUnsafeMutableBufferPointer { out in
            for n in 0..<batch {
                sgemm(transposeA: false, transposeB: false, m: head.classes, n: plane, k: channels, alpha: 1,
                      a: store.pointer(head.weight), lda: channels, b: ws.conv6 + n * channels * plane, ldb: plane,
                      beta: 0, c: out.baseAddress! + n * head.classes * plane, ldc: plane)
            }
            for i in 0..<out.count where out[i] < 0 { out[i] = 0 }
        }
        return maps
    }

    // MARK: Loss and backward

    public struct Losses: Sendable {
        /// The loss backward differentiates: parent + weight * sub-category.
        public let total: Double
        /// The 20-class term.
        public let parent: Double
        /// The sub-category term before its weight (rounds >= 1).
        public let subcategory: Double?
    }

    /// Computes the loss of the last (training) forward pass against `targets`
    /// (one [N, classes] array per head) and its gradient with respect to every
    /// trainable parameter, into `store.gradients`.
    ///
    /// - Parameters:
    ///   - normalizer: the number of samples the loss averages over: the global
    ///     batch when the batch is split across ranks (default: this batch).
    ///   - subcategoryWeight: the sub-category loss weight (5 in the reference).
    ///   - accumulateGradients: add to the gradient buffer instead of overwriting it.
    ///   - gradientsReady: called as backward finishes each trainable block, with
    ///     the range of `store.gradients` that is final from then on (it grows
    ///     from the end), so that a reduction can start while backward continues.
    @discardableResult
    public func backward(targets: [[Float]], normalizer: Int? = nil, subcategoryWeight: Float = 5,
                         accumulateGradients: Bool = false,
                         gradientsReady: ((Range<Int>) -> Void)? = nil) -> Losses {
        guard let ws = workspace, case .training(_, let wantInputGradient) = lastMode, let input = lastInput else {
            preconditionFailure("backward needs a forward pass in training mode first")
        }
        precondition(targets.count == heads.count, "one target array per head (\(heads.count))")
        let batch = ws.key.batch, channels = configuration.featureChannels
        let plane = mapSize.height * mapSize.width
        let pass = Pass(store: store, folded: folded, batch: batch, scratch: ws.scratch, dropout: dropoutOfLastPass,
                        accumulateGradients: accumulateGradients)

        // Heads: loss, logit gradients, weight gradients, pooled-feature gradient.
        var values: [Double] = []
        for (k, head) in heads.enumerated() {
            precondition(targets[k].count == batch * head.classes, "\(head.name) targets must be [\(batch), \(head.classes)]")
            let weight: Float = k == 0 ? 1 : subcategoryWeight
            values.append(targets[k].withUnsafeBufferPointer {
                MultilabelSoftMarginLoss.evaluate(logits: ws.logits[k], targets: $0.baseAddress!, batch: batch,
                                                  classes: head.classes, normalizer: normalizer, weight: weight,
                                                  gradient: ws.logitGradients[k])
            })
            // dW [K, C] = dlogitsᵀ [K, N] * pooled [N, C]
            sgemm(transposeA: true, transposeB: false, m: head.classes, n: channels, k: batch, alpha: 1,
                  a: ws.logitGradients[k], lda: head.classes, b: ws.pooled, ldb: channels,
                  beta: accumulateGradients ? 1 : 0, c: store.gradientPointer(head.weight), ldc: channels)
            // dpooled [N, C] += dlogits [N, K] * W [K, C]
            sgemm(transposeA: false, transposeB: false, m: batch, n: channels, k: head.classes, alpha: 1,
                  a: ws.logitGradients[k], lda: head.classes, b: store.pointer(head.weight), ldb: channels,
                  beta: k == 0 ? 0 : 1, c: ws.pooledGradient!, ldc: channels)
        }
        let headStart = store.entry(heads[0].weight).gradientOffset!
        gradientsReady?(headStart..<store.trainableCount)

        // conv6 = dropout7(relu(bn7(b7 output))).
        var dy = ws.gradientA!, spare = ws.gradientB!
        GlobalAveragePool.backward(outputGradient: ws.pooledGradient!, inputGradient: dy, batch: batch,
                                   channels: channels, plane: plane)
        if pass.dropout != nil, let mask = ws.conv6Mask {
            ChannelDropout.apply(mask: mask, to: dy, batch: batch, channels: channels, plane: plane)
        }
        bn7.backward(pass, output: ws.conv6, outputGradient: dy, inputGradient: dy, plane: plane)

        let lastBlock = wantInputGradient ? 0 : Self.firstTrainableBlock
        for index in stride(from: blocks.count - 1, through: lastBlock, by: -1) {
            let (h, w) = blockInputSizes[index]
            let wantDX = wantInputGradient || index > Self.firstTrainableBlock
            let dx: UnsafeMutablePointer<Float>?
            switch blocks[index] {
            case .basic(let block):
                dx = block.backward(pass, dy: dy, height: h, width: w, buffers: ws.blockBuffers[index],
                                    scratch: ws.gradientScratch!, spare: spare, wantInputGradient: wantDX)
            case .bottleneck(let block):
                dx = block.backward(pass, dy: dy, height: h, width: w, buffers: ws.blockBuffers[index],
                                    scratch: ws.gradientScratch!, spare: spare, wantInputGradient: wantDX)
            }
            if let start = blockGradientStarts[index] { gradientsReady?(start..<store.trainableCount) }
            guard let dx else { break }
            if dx != dy { spare = dy }
            dy = dx
        }
        if wantInputGradient, let inputGradient = ws.inputGradient {
            conv1a.backward(pass, input: input, outputGradient: dy, height: ws.key.height, width: ws.key.width,
                            inputGradient: inputGradient)
        }
        let subcategory = values.count > 1 ? values[1] : nil
        return Losses(total: values[0] + Double(subcategoryWeight) * (subcategory ?? 0), parent: values[0],
                      subcategory: subcategory)
    }

    private var dropoutOfLastPass: DropoutContext? {
        if case .training(let dropout, _) = lastMode { return dropout }
        return nil
    }

    /// d loss / d input of the last backward pass, [N, 3, H, W], when the forward
    /// pass asked for it.
    public var inputGradient: UnsafeBufferPointer<Float>? {
        guard let ws = workspace, let gradient = ws.inputGradient else { return nil }
        return UnsafeBufferPointer(start: gradient, count: ws.key.batch * 3 * ws.key.height * ws.key.width)
    }

    /// Bytes of activation and scratch memory held for the current batch shape.
    public var workspaceBytes: Int { workspace?.byteCount ?? 0 }

    // MARK: Memory planning

    private func prepareWorkspace(batch: Int, height: Int, width: Int, purpose: Workspace.Purpose) -> Workspace {
        let key = Workspace.Key(batch: batch, height: height, width: width, purpose: purpose)
        if let workspace, workspace.key == key { return workspace }
        workspace = nil  // release the old shape's memory before planning the new one
        let ws = Workspace(key: key)
        let training: Bool, keepStem: Bool
        switch purpose {
        case .inference: (training, keepStem) = (false, false)
        case .training(let inputGradient): (training, keepStem) = (true, inputGradient)
        }

        var h = height, w = width
        var largestActivation = conv1a.geometry.outputChannels * h * w
        var largestScratch = conv1a.geometry.scratchCount(height: h, width: w)
        var sharedSizes = (p: 0, middle: 0, inner: 0)
        var keptSizes: [(p: Int, middle: Int, inner: Int)?] = []
        var gradientSizes = (p: 0, middle: 0, inner: 0)
        blockInputSizes = []
        for (index, block) in blocks.enumerated() {
            blockInputSizes.append((h, w))
            let (outH, outW) = block.outputSize(height: h, width: w)
            let p = block.inputChannels * h * w
            let middle: Int, inner: Int
            switch block {
            case .basic(let basic): (middle, inner) = (basic.middleChannels * outH * outW, 0)
            case .bottleneck(let bottleneck): (middle, inner) = (bottleneck.middleChannels * h * w, bottleneck.innerChannels * h * w)
            }
            for (conv, inH, inW) in block.convolutionInputs(height: h, width: w) {
                largestScratch = max(largestScratch, conv.geometry.scratchCount(height: inH, width: inW))
            }
            largestActivation = max(largestActivation, p, block.outputChannels * outH * outW)
            if training && (index >= Self.firstTrainableBlock || keepStem) {
                keptSizes.append((p, middle, inner))
                gradientSizes = (max(gradientSizes.p, p), max(gradientSizes.middle, middle), max(gradientSizes.inner, inner))
            } else {
                keptSizes.append(nil)
                sharedSizes = (max(sharedSizes.p, p), max(sharedSizes.middle, middle), max(sharedSizes.inner, inner))
            }
            (h, w) = (outH, outW)
        }
        let channels = configuration.featureChannels
        ws.activationA = ws.allocate(batch * largestActivation)
        ws.activationB = ws.allocate(batch * largestActivation)
        ws.scratch = ws.allocate(largestScratch)
        let shared = sharedSizes.p > 0
            ? BlockBuffers(preactivation: ws.allocate(batch * sharedSizes.p), middle: ws.allocate(batch * sharedSizes.middle),
                           inner: sharedSizes.inner > 0 ? ws.allocate(batch * sharedSizes.inner) : nil,
                           middleMask: nil, innerMask: nil)
            : nil
        for (index, sizes) in keptSizes.enumerated() {
            guard let sizes else {
                ws.blockBuffers.append(shared!)
                continue
            }
            var buffers = BlockBuffers(preactivation: ws.allocate(batch * sizes.p), middle: ws.allocate(batch * sizes.middle),
                                       inner: sizes.inner > 0 ? ws.allocate(batch * sizes.inner) : nil,
                                       middleMask: nil, innerMask: nil)
            if case .bottleneck(let block) = blocks[index] {
                buffers.middleMask = ws.allocate(batch * block.middleChannels)
                buffers.innerMask = ws.allocate(batch * block.innerChannels)
            }
            ws.blockBuffers.append(buffers)
        }
        ws.conv6 = ws.allocate(batch * channels * h * w)
        ws.pooled = ws.allocate(batch * channels)
        ws.logits = heads.map { ws.allocate(batch * $0.classes) }
        if training {
            ws.conv6Mask = ws.allocate(batch * channels)
            ws.gradientA = ws.allocate(batch * largestActivation)
            ws.gradientB = ws.allocate(batch * largestActivation)
            ws.gradientScratch = GradientScratch(preactivation: ws.allocate(batch * gradientSizes.p),
                                                 middle: ws.allocate(batch * gradientSizes.middle),
                                                 inner: ws.allocate(batch * max(1, gradientSizes.inner)))
            ws.logitGradients = heads.map { ws.allocate(batch * $0.classes) }
            ws.pooledGradient = ws.allocate(batch * channels)
            if keepStem { ws.inputGradient = ws.allocate(batch * 3 * height * width) }
        }
        workspace = ws
        return ws
    }
}
