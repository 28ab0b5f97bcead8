import Kernels

/// One classification head: a bias-free 1x1 convolution from the pooled
/// feature (or, for CAMs, from every position of conv6) to `classes` scores.
public struct ClassifierHead: Sendable {
    public let name: String
    public let classes: Int
    let weight: ParameterID
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

    let backbone: ResNet38
    /// How the convolutions run: oneDNN (fp32 or bf16) or the im2col reference.
    public var compute: Compute {
        didSet {
            convolutions = compute.convolutionEngine
            store.useGradientLayouts(of: convolutions)
        }
    }
    /// The engine every convolution layer calls (from `compute`).
    private(set) var convolutions: any ConvolutionEngine
    /// Keys of dropout7 in the counter-based RNG (b6 uses 1 and 2, b7 3 and 4).
    static let headDropoutLayer = 5
    static let headDropoutProbability = 0.5

    /// Where each block's weight gradients start in `store.gradients` (nil for frozen blocks).
    private let blockGradientStarts: [Int?]
    private let folded: UnsafeMutablePointer<Float>
    /// The last forward pass's epoch: its backward pass reuses the weights it converted.
    private var weightEpoch = 0
    private var workspace: Workspace?
    private var lastInput: UnsafePointer<Float>?
    private var lastMode: Mode = .inference
    /// conv6's spatial size in the last forward pass.
    public private(set) var mapSize: (height: Int, width: Int) = (0, 0)

    public init(configuration: NetworkConfiguration, compute: Compute = Compute()) {
        self.configuration = configuration
        self.compute = compute
        convolutions = compute.convolutionEngine
        let d = configuration.widthDivisor
        var layout = ParameterStore.Layout()
        var foldedCount = 0
        backbone = ResNet38(widthDivisor: d, layout: &layout, foldedCount: &foldedCount)
        let features = configuration.featureChannels
        if configuration.hasSubcategoryHead {
            let sub = configuration.subcategoryClasses
            heads = [
                ClassifierHead(name: "fc8_20", classes: configuration.classes,
                               weight: layout.add("fc8_20.weight", shape: [configuration.classes, features, 1, 1], trainable: true)),
                // The reference names it fc8_200 whatever k is.
                ClassifierHead(name: "fc8_200", classes: sub,
                               weight: layout.add("fc8_200.weight", shape: [sub, features, 1, 1], trainable: true)),
            ]
        } else {
            heads = [ClassifierHead(name: "fc8", classes: configuration.classes,
                                    weight: layout.add("fc8.weight", shape: [configuration.classes, features, 1, 1], trainable: true))]
        }
        store = ParameterStore(layout: layout)
        store.useGradientLayouts(of: convolutions)
        blockGradientStarts = backbone.gradientStarts(in: layout)
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

    var allBatchNorms: [BatchNormLayer] { backbone.allBatchNorms }

    /// Names of the blocks, in forward order (b2 ... b7).
    public var blockNames: [String] { backbone.blocks.map(\.name) }

    /// Multiply-accumulates of the backbone's convolutions for one image.
    public func backboneMACs(height: Int, width: Int) -> (total: Int, trainable: Int) { backbone.macs(height: height, width: width) }

    /// Multiply-accumulates one training step executes per image (see `ResNet38.trainingMACs`).
    public func trainingMACs(height: Int, width: Int) -> Int { backbone.trainingMACs(height: height, width: width) }

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

    /// He-uniform initialisation of the backbone (see `ResNet38.initialize`).
    public func initializeBackbone(seed: UInt64, residualBranchScale: Double = 1) {
        backbone.initialize(store, seed: seed, residualBranchScale: residualBranchScale)
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
    /// as in the reference, over the whole batch (conv6 after dropout7 when a
    /// training pass runs dropout: the mask is applied inside bn7's pass).
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
        weightEpoch = ConvertedWeights.nextEpoch()
        let pass = Pass(store: store, folded: folded, batch: batch, scratch: ws.scratch(needed: convolutions.needsScratch), dropout: dropout,
                        accumulateGradients: false, convolutions: convolutions.reusingConvertedWeights(epoch: weightEpoch))

        let channels = configuration.featureChannels
        // dropout7 runs inside bn7's pass (ResNet38.forward's conv6Dropout).
        var conv6Dropout: UnsafePointer<Float>? = nil
        if let dropout, let mask = ws.conv6Mask {
            ChannelDropout.drawMask(probability: Self.headDropoutProbability, context: dropout, layer: Self.headDropoutLayer,
                                    batch: batch, channels: channels, mask: mask)
            conv6Dropout = UnsafePointer(mask)
        }
        let (h, w) = backbone.forward(pass, input: input, height: height, width: width, workspace: ws, conv6Dropout: conv6Dropout,
                                      observe: observe)
        let plane = h * w
        GlobalAveragePool.forward(input: ws.conv6, output: ws.pooled, batch: batch, channels: channels, plane: plane)
        for (k, head) in heads.enumerated() {
            // logits [N, K] = pooled [N, C] * Wᵀ, W = [K, C]
            teamSGEMM(transposeA: false, transposeB: true, m: batch, n: head.classes, k: channels, alpha: 1,
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
                teamSGEMM(transposeA: false, transposeB: false, m: head.classes, n: plane, k: channels, alpha: 1,
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
        let pass = Pass(store: store, folded: folded, batch: batch, scratch: ws.scratch(needed: convolutions.needsScratch), dropout: dropoutOfLastPass,
                        accumulateGradients: accumulateGradients, convolutions: convolutions.reusingConvertedWeights(epoch: weightEpoch))

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
            teamSGEMM(transposeA: true, transposeB: false, m: head.classes, n: channels, k: batch, alpha: 1,
                  a: ws.logitGradients[k], lda: head.classes, b: ws.pooled, ldb: channels,
                  beta: accumulateGradients ? 1 : 0, c: store.gradientPointer(head.weight), ldc: channels)
            // dpooled [N, C] += dlogits [N, K] * W [K, C]
            teamSGEMM(transposeA: false, transposeB: false, m: batch, n: channels, k: head.classes, alpha: 1,
                  a: ws.logitGradients[k], lda: head.classes, b: store.pointer(head.weight), ldb: channels,
                  beta: k == 0 ? 0 : 1, c: ws.pooledGradient!, ldc: channels)
        }
        let headStart = store.entry(heads[0].weight).gradientOffset!
        gradientsReady?(headStart..<store.trainableCount)

        // conv6 = dropout7(relu(bn7(b7 output))).
        let dy = ws.gradientA!
        GlobalAveragePool.backward(outputGradient: ws.pooledGradient!, inputGradient: dy, batch: batch,
                                   channels: channels, plane: plane)
        let conv6Dropout = pass.dropout == nil ? nil : ws.conv6Mask.map { UnsafePointer($0) }
        backbone.backward(pass, conv6Gradient: dy, conv6Dropout: conv6Dropout, workspace: ws, input: input,
                          wantInputGradient: wantInputGradient,
                          gradientStarts: blockGradientStarts, trainableCount: store.trainableCount, gradientsReady: gradientsReady)
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
        backbone.plan(ws, keepTaps: false)
        let channels = configuration.featureChannels
        ws.pooled = ws.allocate(batch * channels)
        ws.logits = heads.map { ws.allocate(batch * $0.classes) }
        if case .training = purpose {
            ws.conv6Mask = ws.allocate(batch * channels)
            ws.logitGradients = heads.map { ws.allocate(batch * $0.classes) }
            ws.pooledGradient = ws.allocate(batch * channels)
        }
        workspace = ws
        return ws
    }
}
