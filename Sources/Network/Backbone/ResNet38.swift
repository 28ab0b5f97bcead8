import Kernels

/// ResNet-38 ("resnet38d", spec section 1) up to conv6 = relu(bn7(b7)), with
/// the taps AffinityNet reads: conv4 (b5's pre-activation) and conv5 (b6's).
/// BatchNorm is frozen everywhere; conv1a and the b2 stage are frozen; the
/// convolutions of b3..b7 train. The heads that read it (the SC-CAM
/// classifier, AffinityNet) own the parameter store it registers into.
struct ResNet38 {
    let conv1a: Conv2D
    let blocks: [Block]
    let bn7: BatchNormLayer
    let featureChannels: Int
    /// Index in `blocks` of b3, the first block that trains.
    static let firstTrainableBlock = 3

    /// The blocks whose pre-activation is a tap: conv4 (b5) and conv5 (b6).
    enum Tap: CaseIterable {
        case conv4, conv5
        var blockName: String { self == .conv4 ? "b5" : "b6" }
        /// These blocks keep their pre-activation in NCHW, for the readers of the taps.
        static var blockNames: Set<String> { Set(allCases.map(\.blockName)) }
    }

    /// Registers the backbone's parameters, in the reference's state-dict order.
    init(widthDivisor d: Int, layout: inout ParameterStore.Layout, foldedCount: inout Int) {
        func ch(_ c: Int) -> Int { c / d }
        conv1a = Conv2D("conv1a", ConvolutionGeometry(inputChannels: 3, outputChannels: ch(64), kernel: 3, padding: 1),
                        trainable: false, layout: &layout)
        var blocks: [Block] = []
        func basic(_ name: String, _ cin: Int, _ cmid: Int, _ cout: Int, stride: Int = 1,
                   firstDilation: Int = 1, dilation: Int = 1, trainable: Bool = true) {
            blocks.append(.basic(BasicBlock(name, input: ch(cin), middle: ch(cmid), output: ch(cout), stride: stride,
                                            firstDilation: firstDilation, dilation: dilation, trainable: trainable,
                                            plainPreactivation: Tap.blockNames.contains(name),
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
                                                  dropoutLayers: (1, 2), plainPreactivation: Tap.blockNames.contains("b6"),
                                                  foldedOffset: &foldedCount, layout: &layout)))
        blocks.append(.bottleneck(BottleneckBlock("b7", input: ch(2048), output: ch(4096), dilation: 4, dropout: 0.5,
                                                  dropoutLayers: (3, 4), plainPreactivation: Tap.blockNames.contains("b7"),
                                                  foldedOffset: &foldedCount, layout: &layout)))
        self.blocks = blocks
        featureChannels = ch(4096)
        bn7 = BatchNormLayer("bn7", channels: featureChannels, foldedOffset: foldedCount, layout: &layout)
        foldedCount += 2 * featureChannels
    }

    var allBatchNorms: [BatchNormLayer] { blocks.flatMap(\.batchNorms) + [bn7] }
    var allConvolutions: [Conv2D] { [conv1a] + blocks.flatMap(\.convolutions) }

    func blockIndex(of tap: Tap) -> Int { blocks.firstIndex { $0.name == tap.blockName }! }
    func channels(of tap: Tap) -> Int { blocks[blockIndex(of: tap)].inputChannels }

    /// Where each block's weight gradients start in the gradient buffer (nil for frozen blocks).
    func gradientStarts(in layout: ParameterStore.Layout) -> [Int?] {
        blocks.map { block in block.convolutions.compactMap { layout.entries[$0.weight.index].gradientOffset }.min() }
    }

    // MARK: Cost

    /// Multiply-accumulates of the convolutions for one image.
    func macs(height: Int, width: Int) -> (total: Int, trainable: Int) {
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
    func trainingMACs(height: Int, width: Int) -> Int {
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

    /// conv6's size for an input of `height` x `width`: ceil(n / 8) per axis.
    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        blocks.reduce((height, width)) { $1.outputSize(height: $0.0, width: $0.1) }
    }

    // MARK: Initialisation

    /// He-uniform initialisation of every convolution, U(-b, b) with
    /// b = sqrt(6 / fan_in), and identity BatchNorm: for training from scratch
    /// (the demo, benchmarks, tests) where no ImageNet weights are loaded.
    ///
    /// `residualBranchScale` scales the last convolution of every residual
    /// branch. The BatchNorms are frozen at identity, so nothing renormalises
    /// the residual sums: at 1 their variance doubles block after block and a
    /// fresh network's logits are in the hundreds. A small scale starts each
    /// block near the identity, the usual remedy for training deep residual
    /// networks without normalisation.
    func initialize(_ store: ParameterStore, seed: UInt64, residualBranchScale: Double) {
        let branchEnds = Set(blocks.map(\.branchEnd.weight))
        for (layer, conv) in allConvolutions.enumerated() {
            let scale = branchEnds.contains(conv.weight) ? residualBranchScale : 1
            HeUniform.fill(store.pointer(conv.weight), count: conv.geometry.weightCount, fanIn: conv.geometry.columnRows,
                           scale: scale, seed: seed, layer: layer)
        }
        resetBatchNorms(store)
    }

    /// Identity BatchNorm statistics (weight 1, bias 0, mean 0, variance 1).
    func resetBatchNorms(_ store: ParameterStore) {
        for norm in allBatchNorms { norm.resetToIdentity(store) }
    }

    // MARK: Forward and backward

    /// Runs conv1a, b2 ... b7 and bn7 on `input` [N, 3, H, W] into `ws.conv6`.
    /// `observe` sees the output of conv1a, of every block and conv6, named as
    /// in the reference. `conv6Dropout`, a channel dropout's mask [N, C] for
    /// conv6, is applied in bn7's pass (and conv6 is seen after it). Returns
    /// conv6's spatial size.
    func forward(_ pass: Pass, input: UnsafePointer<Float>, height: Int, width: Int, workspace ws: Workspace,
                 conv6Dropout: UnsafePointer<Float>? = nil,
                 observe: ((String, UnsafeBufferPointer<Float>) -> Void)?) -> (height: Int, width: Int) {
        let batch = pass.batch
        let blocked = blockedBoundaries(pass, height: height, width: width)
        func layout(_ channels: Int) -> ActivationLayout { .shared(channels: channels, allBlocked: blocked) }
        /// What `observe` sees is NCHW, whatever the layout.
        func show(_ name: String, _ values: UnsafePointer<Float>, channels: Int, plane: Int) {
            guard let observe else { return }
            var plain = [Float](repeating: 0, count: batch * channels * plane)
            ActivationLayout.convert(values, from: layout(channels), into: &plain, to: .plain, batch: batch, channels: channels,
                                     plane: plane)
            plain.withUnsafeBufferPointer { observe(name, $0) }
        }
        let stemChannels = conv1a.geometry.outputChannels
        conv1a.forward(pass, input: input, height: height, width: width, output: ws.activationA,
                       layouts: .init(output: layout(stemChannels)))
        show("conv1a", ws.activationA, channels: stemChannels, plane: height * width)
        var x = ws.activationA!, spare = ws.activationB!
        var h = height, w = width
        for (index, block) in blocks.enumerated() {
            let y: UnsafeMutablePointer<Float>
            switch block {
            case .basic(let basic):
                y = basic.forward(pass, x: x, height: h, width: w, buffers: ws.blockBuffers[index], spare: spare,
                                  blockedBoundaries: blocked)
            case .bottleneck(let bottleneck):
                y = bottleneck.forward(pass, x: x, height: h, width: w, buffers: ws.blockBuffers[index], spare: spare,
                                       blockedBoundaries: blocked)
            }
            if y != x { spare = x }
            x = y
            (h, w) = block.outputSize(height: h, width: w)
            show(block.name, x, channels: block.outputChannels, plane: h * w)
        }
        bn7.forward(pass, input: x, output: ws.conv6, plane: h * w, layouts: .init(input: layout(featureChannels)),
                    dropout: conv6Dropout)
        observe?("conv6", UnsafeBufferPointer(start: ws.conv6, count: batch * featureChannels * h * w))
        return (h, w)
    }

    /// Whether the tensors between blocks (from conv1a's output to b7's) are
    /// kept blocked: when every convolution exchanges blocked tensors at its size.
    func blockedBoundaries(_ pass: Pass, height: Int, width: Int) -> Bool {
        var (h, w) = (height, width)
        for block in blocks {
            for (conv, ch, cw) in block.convolutionInputs(height: h, width: w) where !conv.exchangesBlocked(pass, height: ch, width: cw) {
                return false
            }
            (h, w) = block.outputSize(height: h, width: w)
        }
        return conv1a.exchangesBlocked(pass, height: height, width: width)
    }

    /// The tap `tap` of the last forward pass, [N, channels, h, w]: kept when
    /// the workspace was planned with taps (or for training).
    func tapValues(_ tap: Tap, workspace ws: Workspace) -> UnsafeMutablePointer<Float> {
        ws.blockBuffers[blockIndex(of: tap)].preactivation
    }

    /// Backward from `dy`, the gradient at conv6 (in `ws.gradientA`), plus the
    /// gradients arriving at the taps (added to the pre-activation gradient of
    /// b5 and b6), down to b3's input, or through the stem into
    /// `ws.inputGradient` with `wantInputGradient`. `gradientsReady` hears the
    /// range of the gradient buffer that is final after each trainable block.
    /// With `conv6Dropout` (the mask `forward` took), dy is the gradient after
    /// the dropout and is multiplied by the mask in place within bn7's pass.
    func backward(_ pass: Pass, conv6Gradient dy: UnsafeMutablePointer<Float>, conv6Dropout: UnsafePointer<Float>? = nil,
                  workspace ws: Workspace,
                  input: UnsafePointer<Float>, taps: [Tap: UnsafePointer<Float>] = [:], wantInputGradient: Bool,
                  gradientStarts: [Int?], trainableCount: Int, gradientsReady: ((Range<Int>) -> Void)?) {
        var dy = dy, spare = dy == ws.gradientA! ? ws.gradientB! : ws.gradientA!
        let (h6, w6) = ws.blockInputSizes.last.map { blocks.last!.outputSize(height: $0.height, width: $0.width) } ?? (0, 0)
        let blocked = blockedBoundaries(pass, height: ws.key.height, width: ws.key.width)
        let b7Layout = ActivationLayout.shared(channels: featureChannels, allBlocked: blocked)
        // Into the other buffer when b7's output is blocked: a layout change cannot run in place.
        let b7Gradient = b7Layout == .plain ? dy : spare
        bn7.backward(pass, output: ws.conv6, outputGradient: dy, droppedBy: conv6Dropout, inputGradient: b7Gradient, plane: h6 * w6,
                     layouts: .init(input: b7Layout))
        if b7Gradient != dy { (dy, spare) = (b7Gradient, dy) }
        let tapBlocks = Dictionary(uniqueKeysWithValues: taps.map { (blockIndex(of: $0.key), $0.value) })
        let lastBlock = wantInputGradient ? 0 : Self.firstTrainableBlock
        for index in stride(from: blocks.count - 1, through: lastBlock, by: -1) {
            let (h, w) = ws.blockInputSizes[index]
            let wantDX = wantInputGradient || index > Self.firstTrainableBlock
            let dx: UnsafeMutablePointer<Float>?
            switch blocks[index] {
            case .basic(let block):
                dx = block.backward(pass, dy: dy, height: h, width: w, buffers: ws.blockBuffers[index],
                                    scratch: ws.gradientScratch!, spare: spare, wantInputGradient: wantDX,
                                    preactivationGradient: tapBlocks[index], blockedBoundaries: blocked)
            case .bottleneck(let block):
                dx = block.backward(pass, dy: dy, height: h, width: w, buffers: ws.blockBuffers[index],
                                    scratch: ws.gradientScratch!, spare: spare, wantInputGradient: wantDX,
                                    preactivationGradient: tapBlocks[index], blockedBoundaries: blocked)
            }
            if let start = gradientStarts[index] { gradientsReady?(start..<trainableCount) }
            guard let dx else { break }
            if dx != dy { spare = dy }
            dy = dx
        }
        if wantInputGradient, let inputGradient = ws.inputGradient {
            conv1a.backward(pass, input: input, outputGradient: dy, height: ws.key.height, width: ws.key.width,
                            inputGradient: inputGradient,
                            layouts: .init(output: .shared(channels: conv1a.geometry.outputChannels, allBlocked: blocked)))
        }
    }

    // MARK: Memory planning

    /// Allocates the backbone's activations (and, for training, gradients) in
    /// `ws`: the trainable blocks keep theirs for backward, frozen ones share
    /// one set, and `keepTaps` keeps b5's and b6's pre-activations in inference.
    func plan(_ ws: Workspace, keepTaps: Bool) {
        let batch = ws.key.batch, height = ws.key.height, width = ws.key.width
        let training: Bool, keepStem: Bool
        switch ws.key.purpose {
        case .inference: (training, keepStem) = (false, false)
        case .training(let inputGradient): (training, keepStem) = (true, inputGradient)
        }
        let tapIndices = keepTaps ? Set(Tap.allCases.map(blockIndex(of:))) : []
        var h = height, w = width
        var largestActivation = conv1a.geometry.outputChannels * h * w
        var largestScratch = conv1a.geometry.scratchCount(height: h, width: w)
        var sharedSizes = (p: 0, middle: 0, inner: 0)
        var keptSizes: [(p: Int, middle: Int, inner: Int, tapOnly: Bool)?] = []
        var gradientSizes = (p: 0, middle: 0, inner: 0)
        ws.blockInputSizes = []
        for (index, block) in blocks.enumerated() {
            ws.blockInputSizes.append((h, w))
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
                keptSizes.append((p, middle, inner, false))
                gradientSizes = (max(gradientSizes.p, p), max(gradientSizes.middle, middle), max(gradientSizes.inner, inner))
            } else {
                keptSizes.append(tapIndices.contains(index) ? (p, 0, 0, true) : nil)
                sharedSizes = (max(sharedSizes.p, p), max(sharedSizes.middle, middle), max(sharedSizes.inner, inner))
            }
            (h, w) = (outH, outW)
        }
        ws.activationA = ws.allocate(batch * largestActivation)
        ws.activationB = ws.allocate(batch * largestActivation)
        ws.scratchCount = largestScratch
        let shared = sharedSizes.p > 0
            ? BlockBuffers(preactivation: ws.allocate(batch * sharedSizes.p), middle: ws.allocate(batch * sharedSizes.middle),
                           inner: sharedSizes.inner > 0 ? ws.allocate(batch * sharedSizes.inner) : nil,
                           middleMask: nil, innerMask: nil)
            : nil
        ws.blockBuffers = []
        for (index, sizes) in keptSizes.enumerated() {
            guard let sizes else {
                ws.blockBuffers.append(shared!)
                continue
            }
            if sizes.tapOnly {
                // Only the pre-activation is kept; the rest is the shared scratch.
                var buffers = shared!
                buffers.preactivation = ws.allocate(batch * sizes.p)
                ws.blockBuffers.append(buffers)
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
        ws.conv6 = ws.allocate(batch * featureChannels * h * w)
        if training {
            ws.gradientA = ws.allocate(batch * largestActivation)
            ws.gradientB = ws.allocate(batch * largestActivation)
            ws.gradientScratch = GradientScratch(preactivation: ws.allocate(batch * gradientSizes.p),
                                                 middle: ws.allocate(batch * gradientSizes.middle),
                                                 inner: ws.allocate(batch * max(1, gradientSizes.inner)))
            if keepStem { ws.inputGradient = ws.allocate(batch * 3 * height * width) }
        }
    }
}
