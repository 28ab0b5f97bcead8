import Kernels

/// DeepLab-v2 (ResNet-101 + ASPP) inside the MSC wrapper, as
/// kazuto1011/deeplab-pytorch builds `DeepLabV2_ResNet101_MSC`, with explicit
/// forward and backward passes: the same network runs on the input at scale
/// 1 and at each extra scale (shared weights), the extra scales' logits are
/// resized to scale 1's, and their pixel-wise maximum is the prediction. The
/// parameter store holds the reference's MSC state dict (`base.` keys) in
/// its order; BatchNorm is frozen, every convolution and the ASPP train.
public final class DeepLabV2 {
    public let configuration: DeepLabConfiguration
    public let store: ParameterStore
    let backbone: ResNet101
    /// How the convolutions run: oneDNN (fp32 or bf16) or the im2col reference.
    public var compute: Compute {
        didSet {
            convolutions = compute.convolutionEngine
            store.useGradientLayouts(of: convolutions)
        }
    }
    /// The engine every convolution layer calls (from `compute`).
    private(set) var convolutions: any ConvolutionEngine
    let aspp: ASPP
    private let folded: UnsafeMutablePointer<Float>
    /// The last forward pass's epoch: its backward pass reuses the weights it converted.
    private var weightEpoch = 0
    private var passes: [ScaleKey: ScalePass] = [:]
    private var scratch: (pointer: UnsafeMutablePointer<Float>, count: Int)?
    /// The im2col scratch an input size needs, worked out once per size.
    private var scratchNeeds: [Int: Int] = [:]
    static let prefix = "base."

    public init(configuration: DeepLabConfiguration, compute: Compute = Compute()) {
        self.configuration = configuration
        self.compute = compute
        convolutions = compute.convolutionEngine
        var layout = ParameterStore.Layout()
        var foldedCount = 0
        backbone = ResNet101(widthDivisor: configuration.widthDivisor, prefix: Self.prefix, layout: &layout, foldedCount: &foldedCount)
        aspp = ASPP(prefix: Self.prefix, inputChannels: backbone.featureChannels, classes: configuration.classes, layout: &layout)
        store = ParameterStore(layout: layout)
        store.useGradientLayouts(of: convolutions)
        folded = .allocate(capacity: foldedCount)
        folded.initialize(repeating: 0, count: foldedCount)
        initialize(seed: 0)
    }

    deinit {
        folded.deallocate()
        scratch?.pointer.deallocate()
    }

    /// From-scratch weights: He-uniform backbone (residual branches scaled),
    /// identity BatchNorm, and the reference's N(0, 0.01) ASPP.
    public func initialize(seed: UInt64, residualBranchScale: Double = 1) {
        backbone.initialize(store, seed: seed, residualBranchScale: residualBranchScale)
        aspp.initialize(store, seed: seed)
    }

    /// The reference's ASPP initialisation alone, for a backbone loaded from elsewhere.
    public func initializeASPP(seed: UInt64) { aspp.initialize(store, seed: seed) }

    /// The logits' size for an input of `height` x `width`: floor((n + 1) / 8) + 1.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        backbone.outputSize(height: height, width: width)
    }

    /// Multiply-accumulates of one image's forward through every MSC branch.
    public func macs(height: Int, width: Int) -> Int {
        scaleSizes(height: height, width: width).reduce(0) { total, size in
            let (h, w) = outputSize(height: size.height, width: size.width)
            return total + backbone.macs(height: size.height, width: size.width) + aspp.macs(height: h, width: w)
        }
    }

    /// Multiply-accumulates of one training sample: the forward, every
    /// convolution's weight gradient, and every input gradient but the
    /// stem's (deeplab-v2.md 6: 0.4129 T for a full-width 321 crop).
    public func trainingMACs(height: Int, width: Int) -> Int {
        let stem = scaleSizes(height: height, width: width).reduce(0) { $0 + backbone.stem.geometry.macs(height: $1.height, width: $1.width) }
        return 3 * macs(height: height, width: width) - stem
    }

    /// Names of the ASPP's weights and biases (the 10x and 20x learning-rate groups).
    public var asppWeightNames: [String] { aspp.branches.map { store.entry($0.weight).name } }
    public var asppBiasNames: [String] { aspp.branches.compactMap { $0.bias.map { store.entry($0).name } } }

    /// Input sizes of the MSC branches: scale 1, then each extra scale.
    func scaleSizes(height: Int, width: Int) -> [(height: Int, width: Int)] {
        [(height, width)] + configuration.scales.map {
            (DeepLabConfiguration.scaledExtent(height, scale: $0), DeepLabConfiguration.scaledExtent(width, scale: $0))
        }
    }

    // MARK: Memory

    struct ScaleKey: Hashable {
        let batch, height, width: Int
        let training: Bool
    }

    /// One MSC branch's memory: the scaled input, the backbone's activations, the logits.
    final class ScalePass {
        let activations: ResNet101Activations
        let input: UnsafeMutablePointer<Float>
        let logits: UnsafeMutablePointer<Float>
        let logitGradient: UnsafeMutablePointer<Float>
        let inputGradient: UnsafeMutablePointer<Float>
        let outputSize: (height: Int, width: Int)

        init(network: DeepLabV2, key: ScaleKey) {
            activations = ResNet101Activations(network.backbone, batch: key.batch, height: key.height, width: key.width,
                                               training: key.training)
            outputSize = network.outputSize(height: key.height, width: key.width)
            let arena = activations.arena
            let logitCount = key.batch * network.configuration.classes * outputSize.height * outputSize.width
            input = arena.floats(key.batch * 3 * key.height * key.width)
            logits = arena.floats(logitCount)
            logitGradient = arena.floats(key.training ? logitCount : 0)
            inputGradient = arena.floats(key.training ? key.batch * 3 * key.height * key.width : 0)
        }
    }

    func pass(batch: Int, height: Int, width: Int, training: Bool) -> ScalePass {
        let key = ScaleKey(batch: batch, height: height, width: width, training: training)
        if let existing = passes[key] { return existing }
        // One shape set at a time: a new image size frees the old one's memory.
        if passes.count >= 2 * (configuration.scales.count + 1) { passes.removeAll() }
        let created = ScalePass(network: self, key: key)
        passes[key] = created
        return created
    }

    /// im2col scratch large enough for every convolution at this input size.
    func scratchPointer(height: Int, width: Int) -> UnsafeMutablePointer<Float> {
        let needed = scratchNeeds[height << 32 | width] ?? scratchCount(height: height, width: width)
        scratchNeeds[height << 32 | width] = needed
        if let scratch, scratch.count >= needed { return scratch.pointer }
        scratch?.pointer.deallocate()
        let pointer = HugePages.zeroed(needed, as: Float.self)
        scratch = (pointer, needed)
        return pointer
    }

    /// Floats of im2col scratch the largest convolution of any MSC branch needs.
    func scratchCount(height: Int, width: Int) -> Int {
        var needed = 1
        for size in scaleSizes(height: height, width: width) {
            let poolSize = backbone.stemSizes(height: size.height, width: size.width).pool
            needed = max(needed, backbone.stem.geometry.scratchCount(height: size.height, width: size.width))
            var (h, w) = poolSize
            for block in backbone.blocks {
                for (unit, inH, inW) in block.unitInputs(height: h, width: w) {
                    needed = max(needed, unit.geometry.scratchCount(height: inH, width: inW))
                }
                (h, w) = block.outputSize(height: h, width: w)
            }
            needed = max(needed, aspp.scratchCount(height: h, width: w))
        }
        return needed
    }

    func makePass(batch: Int, height: Int, width: Int, accumulate: Bool) -> Pass {
        Pass(store: store, folded: folded, batch: batch,
             scratch: convolutions.needsScratch ? scratchPointer(height: height, width: width) : ConvolutionScratch.none,
             dropout: nil, accumulateGradients: accumulate, convolutions: convolutions.reusingConvertedWeights(epoch: weightEpoch))
    }

    /// Folds the BatchNorms and opens a new weight epoch: a forward pass starts.
    func foldBatchNorms() {
        weightEpoch = ConvertedWeights.nextEpoch()
        for unit in backbone.allUnits { unit.norm.fold(store: store, into: folded) }
    }

    // MARK: One branch

    /// The layout the backbone leaves its features (and takes their gradient) in.
    func featureLayout(_ pass: Pass, _ scale: ScalePass) -> ActivationLayout {
        let layout = backbone.featureLayout(pass, activations: scale.activations)
        let (h, w) = scale.outputSize
        precondition(layout == .plain || aspp.exchangesBlocked(pass, height: h, width: w), "the ASPP reads blocked features")
        return layout
    }

    /// The base network (backbone + ASPP) on `scale.input` into `scale.logits`.
    func forwardBranch(_ pass: Pass, _ scale: ScalePass) {
        let (h, w) = backbone.forward(pass, input: scale.input, activations: scale.activations)
        aspp.forward(pass, features: scale.activations.features, height: h, width: w, logits: scale.logits,
                     featureLayout: featureLayout(pass, scale))
    }

    /// Backward of one branch from `scale.logitGradient`; the input gradient
    /// into `scale.inputGradient` when wanted. `gradientsReady` hears where
    /// the final tail of the gradient buffer starts, after the ASPP and after
    /// each block (the ASPP's tensors are last in the store).
    func backwardBranch(_ pass: Pass, _ scale: ScalePass, wantInputGradient: Bool, gradientsReady: ((Int) -> Void)? = nil) {
        let (h, w) = scale.outputSize
        aspp.backward(pass, features: scale.activations.features, logitGradient: scale.logitGradient, height: h, width: w,
                      featureGradient: scale.activations.gradientA, featureLayout: featureLayout(pass, scale))
        if let start = store.entry(aspp.branches[0].weight).gradientOffset { gradientsReady?(start) }
        backbone.backward(pass, input: scale.input, activations: scale.activations,
                          inputGradient: wantInputGradient ? scale.inputGradient : nil, gradientsReady: gradientsReady)
    }
}
