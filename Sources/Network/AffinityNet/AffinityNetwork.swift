import Foundation
import Kernels

/// psa's AffinityNet (`resnet38_aff.py`, spec 9.1): the ResNet-38 backbone,
/// 1x1 convolutions with ELU on its three taps (f8_3 on conv4, f8_4 on conv5,
/// f8_5 on conv6), their concatenation through f9 with ELU into an embedding,
/// and the affinity exp(-mean |e_to - e_from|) of every radius-5 pair.
public final class AffinityNetwork {
    public let widthDivisor: Int
    public let store: ParameterStore
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
    /// f8_3, f8_4, f8_5 (in that order: the order of their channels in f9's input).
    let tapHeads: [Conv2D]
    let f9: Conv2D
    private let gradientStarts: [Int?]
    private let folded: UnsafeMutablePointer<Float>
    /// The last forward pass's epoch: its backward pass reuses the weights it converted.
    private var weightEpoch = 0
    private var workspace: Workspace?
    private var buffers: HeadBuffers?
    private var lastInput: UnsafePointer<Float>?
    private var lastMode: Mode = .inference
    /// The feature grid of the last forward pass, and its pairs.
    public private(set) var pairs = PairGeometry(height: 0, width: 0)
    /// The pairs an inference pass scores (training always uses psa's).
    public var inferencePairCoverage = PairGeometry.Coverage.psa {
        didSet {
            guard inferencePairCoverage != oldValue else { return }
            workspace = nil
            buffers = nil
        }
    }

    /// The layers trained from scratch (10x learning rate in psa).
    public static let headNames = ["f8_3", "f8_4", "f8_5", "f9"]
    /// `PolySGD`'s 10x group: these layers' weights.
    public static let headPrefixes = headNames.map { "\($0)." }

    public init(widthDivisor d: Int = 1, compute: Compute = Compute()) {
        precondition(NetworkConfiguration.widthDivisors.contains(d), "width divisor must be a power of two up to 64")
        widthDivisor = d
        self.compute = compute
        convolutions = compute.convolutionEngine
        var layout = ParameterStore.Layout()
        var foldedCount = 0
        backbone = ResNet38(widthDivisor: d, layout: &layout, foldedCount: &foldedCount)
        let sources = [backbone.channels(of: .conv4), backbone.channels(of: .conv5), backbone.featureChannels]
        let outputs = [64 / d, 128 / d, 256 / d]
        tapHeads = zip(Self.headNames.prefix(3), zip(sources, outputs)).map { name, io in
            Conv2D(name, ConvolutionGeometry(inputChannels: io.0, outputChannels: io.1, kernel: 1), trainable: true, layout: &layout)
        }
        let embedding = outputs.reduce(0, +)
        f9 = Conv2D("f9", ConvolutionGeometry(inputChannels: embedding, outputChannels: embedding, kernel: 1), trainable: true, layout: &layout)
        store = ParameterStore(layout: layout)
        store.useGradientLayouts(of: convolutions)
        gradientStarts = backbone.gradientStarts(in: layout)
        folded = .allocate(capacity: foldedCount)
        folded.initialize(repeating: 0, count: foldedCount)
        backbone.resetBatchNorms(store)
        initializeHeads(seed: 0)
    }

    deinit { folded.deallocate() }

    /// Multiply-accumulates of one training step per image: the backbone's
    /// (see `ResNet38.trainingMACs`) and the four 1x1 layers' forward, weight
    /// and input gradients.
    public func trainingMACs(height: Int, width: Int) -> Int {
        let (h, w) = backbone.outputSize(height: height, width: width)
        return backbone.trainingMACs(height: height, width: width) + (tapHeads + [f9]).reduce(0) { $0 + 3 * $1.geometry.macs(height: h, width: w) }
    }

    /// Channels of the embedding (448 at full width).
    public var embeddingChannels: Int { f9.geometry.outputChannels }

    /// psa's initialisation of the new layers (spec 9.1): Kaiming-normal
    /// (fan_in, gain sqrt 2) for f8_3..f8_5, Xavier-uniform with gain 4 for f9.
    public func initializeHeads(seed: UInt64) {
        let random = CounterRandom(seed: seed)
        for (layer, conv) in (tapHeads + [f9]).enumerated() {
            let weight = store.pointer(conv.weight), fanIn = conv.geometry.inputChannels, fanOut = conv.geometry.outputChannels
            for i in 0..<conv.geometry.weightCount {
                let u1 = random.uniform(0x4146_4E45, UInt64(layer), UInt64(i), 0), u2 = random.uniform(0x4146_4E45, UInt64(layer), UInt64(i), 1)
                if conv.name == "f9" {
                    let bound = 4 * (6.0 / Double(fanIn + fanOut)).squareRoot()
                    weight[i] = Float((2 * u1 - 1) * bound)
                } else {
                    let normal = (-2 * log(1 - u1)).squareRoot() * cos(2 * Double.pi * u2)
                    weight[i] = Float(normal * (2.0 / Double(fanIn)).squareRoot())
                }
            }
        }
    }

    /// He-uniform backbone for training from scratch (see `ResNet38.initialize`).
    public func initializeBackbone(seed: UInt64, residualBranchScale: Double = 1) {
        backbone.initialize(store, seed: seed, residualBranchScale: residualBranchScale)
    }

    // MARK: Forward

    public enum Mode: Equatable {
        /// No dropout; nothing kept for backward.
        case inference
        /// Dropout from `dropout` (nil: off, as the goldens use); with
        /// `inputGradient` backward also returns d loss / d input.
        case training(dropout: DropoutContext?, inputGradient: Bool)
    }

    /// Per head activations of a pass (after ELU), the embedding and the affinities.
    struct HeadBuffers {
        let taps: [UnsafeMutablePointer<Float>]  // [N, c_k, h, w]
        let concatenated: UnsafeMutablePointer<Float>  // [N, 448, h, w]
        let embedding: UnsafeMutablePointer<Float>  // [N, 448, h, w]
        let affinities: UnsafeMutablePointer<Float>  // [N, 34, P]
        /// d loss / d (mean |e_to - e_from|) per pair.
        let distanceGradient: UnsafeMutablePointer<Float>?
        let tapGradients: [UnsafeMutablePointer<Float>]
        let concatenatedGradient: UnsafeMutablePointer<Float>?
        let embeddingGradient: UnsafeMutablePointer<Float>?
        /// Gradients at conv4 and conv5 (conv6's goes to the backbone's gradient buffer).
        let conv4Gradient: UnsafeMutablePointer<Float>?
        let conv5Gradient: UnsafeMutablePointer<Float>?
    }

    /// Runs AffinityNet on a batch [N, 3, H, W] of normalised images and
    /// returns the affinities [N, 34, P] of the pairs of `pairs`. `observe`
    /// sees "f8_3", "f8_4", "f8_5" (after ELU), "f9" (the embedding) and "aff".
    @discardableResult
    public func forward(input: UnsafePointer<Float>, batch: Int, height: Int, width: Int, mode: Mode = .inference,
                        observe: ((String, UnsafeBufferPointer<Float>) -> Void)? = nil) -> UnsafeBufferPointer<Float> {
        let purpose: Workspace.Purpose
        var dropout: DropoutContext? = nil
        switch mode {
        case .inference: purpose = .inference
        case .training(let context, let inputGradient):
            purpose = .training(inputGradient: inputGradient)
            dropout = context
        }
        let (ws, heads) = prepare(batch: batch, height: height, width: width, purpose: purpose)
        for norm in backbone.allBatchNorms { norm.fold(store: store, into: folded) }
        weightEpoch = ConvertedWeights.nextEpoch()
        let pass = Pass(store: store, folded: folded, batch: batch, scratch: ws.scratch(needed: convolutions.needsScratch), dropout: dropout,
                        accumulateGradients: false, convolutions: convolutions.reusingConvertedWeights(epoch: weightEpoch))
        let (h, w) = backbone.forward(pass, input: input, height: height, width: width, workspace: ws, observe: nil)
        let plane = h * w
        let sources = [backbone.tapValues(.conv4, workspace: ws), backbone.tapValues(.conv5, workspace: ws), ws.conv6!]
        var channelOffset = 0
        for (k, conv) in tapHeads.enumerated() {
            let channels = conv.geometry.outputChannels
            conv.forward(pass, input: sources[k], height: h, width: w, output: heads.taps[k])
            ELU.forward(heads.taps[k], count: batch * channels * plane)
            observe?(conv.name, UnsafeBufferPointer(start: heads.taps[k], count: batch * channels * plane))
            copyChannels(from: heads.taps[k], channels: channels, into: heads.concatenated, at: channelOffset, batch: batch, plane: plane)
            channelOffset += channels
        }
        f9.forward(pass, input: heads.concatenated, height: h, width: w, output: heads.embedding)
        ELU.forward(heads.embedding, count: batch * embeddingChannels * plane)
        observe?("f9", UnsafeBufferPointer(start: heads.embedding, count: batch * embeddingChannels * plane))
        PairAffinity.forward(embedding: heads.embedding, channels: embeddingChannels, batch: batch, pairs: pairs,
                             affinities: heads.affinities)
        let affinities = UnsafeBufferPointer(start: UnsafePointer(heads.affinities), count: batch * pairs.pairCount)
        observe?("aff", affinities)
        lastInput = input
        lastMode = mode
        return affinities
    }

    /// Copies [N, channels, plane] into channels offset..<offset+channels of
    /// [N, embeddingChannels, plane] (or back, with `reverse`).
    private func copyChannels(from source: UnsafeMutablePointer<Float>, channels: Int, into target: UnsafeMutablePointer<Float>,
                              at offset: Int, batch: Int, plane: Int, reverse: Bool = false) {
        let total = embeddingChannels
        for n in 0..<batch {
            let part = source + n * channels * plane, whole = target + (n * total + offset) * plane
            if reverse { part.update(from: whole, count: channels * plane) } else { whole.update(from: part, count: channels * plane) }
        }
    }

    // MARK: Loss and backward

    /// Computes psa's loss (spec 9.3) of the last training forward pass and its
    /// gradient into `store.gradients`. `labels` are this batch's pair labels;
    /// `counts` the label counts the three terms divide by: the whole global
    /// batch's when the batch is split across ranks (then the ranks' losses and
    /// gradients add up to the global ones).
    @discardableResult
    public func backward(labels: AffinityLoss.Labels, counts: AffinityLoss.Counts? = nil, accumulateGradients: Bool = false,
                         gradientsReady: ((Range<Int>) -> Void)? = nil) -> AffinityLoss.Value {
        guard let ws = workspace, let heads = buffers, case .training(_, let wantInputGradient) = lastMode, let input = lastInput else {
            preconditionFailure("backward needs a forward pass in training mode first")
        }
        let batch = ws.key.batch, plane = pairs.height * pairs.width
        precondition(labels.batch == batch && labels.pairsPerImage == pairs.pairCount, "pair labels must be [\(batch), 34, \(pairs.pairsPerDisplacement)]")
        let dropout: DropoutContext? = { if case .training(let d, _) = lastMode { return d } else { return nil } }()
        let pass = Pass(store: store, folded: folded, batch: batch, scratch: ws.scratch(needed: convolutions.needsScratch), dropout: dropout,
                        accumulateGradients: accumulateGradients, convolutions: convolutions.reusingConvertedWeights(epoch: weightEpoch))
        let counts = counts ?? labels.counts
        let value = AffinityLoss.evaluate(affinities: heads.affinities, labels: labels, counts: counts)
        // d loss / d affinity, then back through the pairs into the embedding.
        let embeddingGradient = heads.embeddingGradient!
        AffinityLoss.distanceGradient(affinities: heads.affinities, labels: labels, counts: counts, into: heads.distanceGradient!)
        PairAffinity.backward(embedding: heads.embedding, channels: embeddingChannels, batch: batch, pairs: pairs,
                              distanceGradient: heads.distanceGradient!, embeddingGradient: embeddingGradient)
        ELU.backward(output: heads.embedding, gradient: embeddingGradient, count: batch * embeddingChannels * plane)
        f9.backward(pass, input: heads.concatenated, outputGradient: embeddingGradient, height: pairs.height, width: pairs.width,
                    inputGradient: heads.concatenatedGradient!)
        let tapTargets = [heads.conv4Gradient!, heads.conv5Gradient!, ws.gradientA!]
        let sources = [backbone.tapValues(.conv4, workspace: ws), backbone.tapValues(.conv5, workspace: ws), ws.conv6!]
        var channelOffset = 0
        for (k, conv) in tapHeads.enumerated() {
            let channels = conv.geometry.outputChannels
            copyChannels(from: heads.tapGradients[k], channels: channels, into: heads.concatenatedGradient!, at: channelOffset,
                         batch: batch, plane: plane, reverse: true)
            channelOffset += channels
            ELU.backward(output: heads.taps[k], gradient: heads.tapGradients[k], count: batch * channels * plane)
            conv.backward(pass, input: sources[k], outputGradient: heads.tapGradients[k], height: pairs.height, width: pairs.width,
                          inputGradient: tapTargets[k])
        }
        let headStart = store.entry(tapHeads[0].weight).gradientOffset!
        gradientsReady?(headStart..<store.trainableCount)
        backbone.backward(pass, conv6Gradient: ws.gradientA!, workspace: ws, input: input,
                          taps: [.conv4: heads.conv4Gradient!, .conv5: heads.conv5Gradient!], wantInputGradient: wantInputGradient,
                          gradientStarts: gradientStarts, trainableCount: store.trainableCount, gradientsReady: gradientsReady)
        return value
    }

    /// d loss / d input of the last backward pass, [N, 3, H, W], when the forward pass asked for it.
    public var inputGradient: UnsafeBufferPointer<Float>? {
        guard let ws = workspace, let gradient = ws.inputGradient else { return nil }
        return UnsafeBufferPointer(start: gradient, count: ws.key.batch * 3 * ws.key.height * ws.key.width)
    }

    /// Bytes of activation and scratch memory held for the current batch shape.
    public var workspaceBytes: Int { workspace?.byteCount ?? 0 }

    // MARK: Memory planning

    /// Bytes of activation and scratch memory a training pass of this batch
    /// shape needs, planned without allocating it.
    public func trainingWorkspaceBytes(batch: Int, height: Int, width: Int) -> Int {
        let ws = Workspace(key: Workspace.Key(batch: batch, height: height, width: width, purpose: .training(inputGradient: false)),
                           countsOnly: true)
        _ = plan(ws)
        _ = ws.scratch(needed: convolutions.needsScratch)
        return ws.byteCount
    }

    private func prepare(batch: Int, height: Int, width: Int, purpose: Workspace.Purpose) -> (Workspace, HeadBuffers) {
        let key = Workspace.Key(batch: batch, height: height, width: width, purpose: purpose)
        if let workspace, let buffers, workspace.key == key { return (workspace, buffers) }
        workspace = nil
        buffers = nil
        let ws = Workspace(key: key)
        let heads = plan(ws)
        workspace = ws
        buffers = heads
        return (ws, heads)
    }

    private func plan(_ ws: Workspace) -> HeadBuffers {
        let batch = ws.key.batch, height = ws.key.height, width = ws.key.width, purpose = ws.key.purpose
        backbone.plan(ws, keepTaps: true)
        let (h, w) = backbone.outputSize(height: height, width: width)
        let geometry = PairGeometry(height: h, width: w, coverage: purpose == .inference ? inferencePairCoverage : .psa)
        if !ws.countsOnly { pairs = geometry }
        let plane = h * w, training = purpose != .inference
        let tapSizes = [backbone.channels(of: .conv4), backbone.channels(of: .conv5)].map { batch * $0 * plane }
        let heads = HeadBuffers(
            taps: tapHeads.map { ws.allocate(batch * $0.geometry.outputChannels * plane) },
            concatenated: ws.allocate(batch * embeddingChannels * plane),
            embedding: ws.allocate(batch * embeddingChannels * plane),
            affinities: ws.allocate(batch * geometry.pairCount),
            distanceGradient: training ? ws.allocate(batch * geometry.pairCount) : nil,
            tapGradients: training ? tapHeads.map { ws.allocate(batch * $0.geometry.outputChannels * plane) } : [],
            concatenatedGradient: training ? ws.allocate(batch * embeddingChannels * plane) : nil,
            embeddingGradient: training ? ws.allocate(batch * embeddingChannels * plane) : nil,
            conv4Gradient: training ? ws.allocate(tapSizes[0]) : nil,
            conv5Gradient: training ? ws.allocate(tapSizes[1]) : nil)
        return heads
    }
}
