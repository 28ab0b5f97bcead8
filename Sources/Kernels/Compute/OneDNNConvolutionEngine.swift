import Foundation

/// oneDNN's convolution primitives in one precision. Each layer shape gets a
/// `LayerKernel` once: dilated layers run on their phase images where that is
/// chosen, and Winograd or direct as the algorithm resolves (the resolved
/// choice is part of the cached primitive's key).
public struct OneDNNConvolutionEngine: ConvolutionEngine {
    public let precision: ConvolutionPrecision
    public let algorithm: ConvolutionAlgorithm
    /// The fewest input and output channels a layer needs to run Winograd.
    public let winogradMinimumChannels: Int
    /// How dilated layers run: on phase images (undilated kernels) or oneDNN's dilated kernels.
    public let dilatedConvolutions: DilatedConvolutions
    /// The network pass these calls belong to: weights converted once in it are reused (`ConvertedWeights`).
    public private(set) var weightEpoch: Int?

    public init(precision: ConvolutionPrecision = .fp32, algorithm: ConvolutionAlgorithm = .winograd,
                winogradMinimumChannels: Int = ConvolutionAlgorithm.referenceWinogradMinimumChannels,
                dilatedConvolutions: DilatedConvolutions = .auto) {
        self.precision = precision
        self.algorithm = algorithm
        self.winogradMinimumChannels = winogradMinimumChannels
        self.dilatedConvolutions = dilatedConvolutions
    }

    public var needsScratch: Bool { false }

    /// oneDNN's AVX-512 backward-weights kernels write OIhw16i16o wherever the
    /// channels fill its 16-blocks; the gradient stays so (on CPUs whose kernels
    /// block by 8, the primitive's output is reordered into it). They write
    /// with aligned stores, so only a gradient on a 64-byte boundary is handed
    /// to them; any other stays OIHW, through a reorder from an aligned buffer.
    public func weightGradientLayout(_ g: ConvolutionGeometry, gradient: UnsafeRawPointer) -> WeightGradientLayout {
        g.inputChannels % 16 == 0 && g.outputChannels % 16 == 0 && Int(bitPattern: gradient) % 64 == 0 ? .blocked16 : .plain
    }

    public func reusingConvertedWeights(epoch: Int) -> any ConvolutionEngine {
        var engine = self
        engine.weightEpoch = epoch
        return engine
    }

    /// Every oneDNN layer does: its primitives take our tensors in any layout,
    /// and the AVX-512 kernels' own is nChw16c (on AVX2 CPUs, whose kernels
    /// block by 8, the blocked tensors are reordered like plain ones, no slower).
    public func exchangesBlockedActivations(_ g: ConvolutionGeometry, height: Int, width: Int) -> Bool { true }

    /// In float32, unless the dilated layers are held to oneDNN's own kernels
    /// or to phases. Measured at DeepLab's 321 crop on Zen 4: oneDNN runs the
    /// ASPP's backward passes at dilations 12-24 on its im2col + gemm fallback
    /// (up to 5x slower than its direct kernels), while one sgemm over the taps
    /// that reach the map runs every pass near the machine's sgemm rate. bf16
    /// keeps oneDNN's bf16 layers, so that every convolution computes in the
    /// precision asked for.
    public func runsOnTaps(_ sum: DilatedBranchSum, height: Int, width: Int) -> Bool {
        precision == .fp32 && dilatedConvolutions == .auto
    }

    public var description: String {
        (precision == .bf16 && !DNNLRuntime.hasNativeBFloat16 ? "oneDNN bf16, emulated"
            : "oneDNN \(precision.rawValue)" + (precision == .fp32 ? ", \(algorithm.rawValue)" : ""))
            + ", dilated layers \(dilatedConvolutions.summary)"
    }

    /// How a layer of this shape, on inputs of this size, runs.
    public func kernel(for g: ConvolutionGeometry, height: Int, width: Int) -> LayerKernel {
        if dilatedConvolutions != .dilated, let phases = DilationPhases(g, height: height, width: width) {
            let algorithm = algorithm.resolved(for: phases.undilated, height: phases.frameHeight, width: phases.frameWidth,
                                               precision: precision, winogradMinimumChannels: winogradMinimumChannels)
            if dilatedConvolutions == .phases || Self.phasesWin(algorithm: algorithm, precision: precision) {
                return .phases(phases.framed(forTile: algorithm.outputTile(precision: precision)), algorithm)
            }
        }
        return .oneDNN(algorithm.resolved(for: g, height: height, width: width, precision: precision,
                                          winogradMinimumChannels: winogradMinimumChannels))
    }

    /// Whether a dilated layer gains from running on its phase images, given
    /// the algorithm the undilated primitive would run. Measured per layer on
    /// Zen 4 (ResNet-38 at 224, batch 2; DeepLab at 321): with Winograd, every
    /// pass of every dilated layer ran 1.1-2.0x faster, the 7x7 phases of
    /// dilation 4 included (their 4x4 tiles waste 31%); with the direct
    /// kernels (float32, or bf16 on AVX512-BF16) the phases ran 0.6-1.0x the
    /// dilated kernels, which are as fast as the undilated ones there. On AMX,
    /// oneDNN 2.6 runs undilated bf16 layers 3-4x faster than dilated ones (the
    /// issue's probe on a 2-core Sapphire Rapids), so bf16 takes the phases there.
    static func phasesWin(algorithm: ConvolutionAlgorithm, precision: ConvolutionPrecision) -> Bool {
        algorithm == .winograd || (precision == .bf16 && DNNLRuntime.hasAMX)
    }

    public func forward(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, input: UnsafePointer<Float>,
                        batch: Int, height: Int, width: Int, output: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                        layouts: ConvolutionLayouts = .plain, scratch: UnsafeMutablePointer<Float> = ConvolutionScratch.none) {
        let phases: DilationPhases, algorithm: ConvolutionAlgorithm
        switch kernel(for: g, height: height, width: width) {
        case .oneDNN(let algorithm):
            return DNNLConvolution.forward(g, precision: precision, weight: weight, bias: bias, input: input, batch: batch,
                                           height: height, width: width, output: output, accumulate: accumulate,
                                           layouts: layouts, algorithm: algorithm, weightEpoch: weightEpoch)
        case .phases(let p, let a): (phases, algorithm) = (p, a)
        }
        ScratchBuffers.lock.withLock {
            let phasedInput = ScratchBuffers.buffer(0, count: phases.frameFloats(batch: batch, channels: g.inputChannels))
            let phasedOutput = ScratchBuffers.buffer(1, count: phases.frameFloats(batch: batch, channels: g.outputChannels))
            phases.split(input, batch: batch, channels: g.inputChannels, layout: layouts.input, into: phasedInput)
            DNNLConvolution.forward(phases.undilated, precision: precision, weight: weight, bias: bias, input: phasedInput,
                                    batch: batch * phases.frameCount, height: phases.frameHeight, width: phases.frameWidth,
                                    output: phasedOutput, accumulate: false, layouts: layouts, algorithm: algorithm,
                                    weightEpoch: weightEpoch)
            phases.merge(phasedOutput, batch: batch, channels: g.outputChannels, layout: layouts.output, into: output,
                         accumulate: accumulate)
        }
    }

    public func backwardWeight(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                               batch: Int, height: Int, width: Int, weightGradient: UnsafeMutablePointer<Float>,
                               biasGradient: UnsafeMutablePointer<Float>?, accumulate: Bool, layouts: ConvolutionLayouts = .plain,
                               scratch: UnsafeMutablePointer<Float> = ConvolutionScratch.none) {
        let phases: DilationPhases, algorithm: ConvolutionAlgorithm
        switch kernel(for: g, height: height, width: width) {
        case .oneDNN(let algorithm):
            return DNNLConvolution.backwardWeight(g, precision: precision, input: input, outputGradient: outputGradient,
                                                  batch: batch, height: height, width: width, weightGradient: weightGradient,
                                                  weightGradientLayout: weightGradientLayout(g, gradient: weightGradient),
                                                  biasGradient: biasGradient, accumulate: accumulate, layouts: layouts,
                                                  algorithm: algorithm)
        case .phases(let p, let a): (phases, algorithm) = (p, a)
        }
        // The weight gradient sums over the batch, so over the phase batch it is the layer's own.
        ScratchBuffers.lock.withLock {
            let phasedInput = ScratchBuffers.buffer(0, count: phases.frameFloats(batch: batch, channels: g.inputChannels))
            let phasedGradient = ScratchBuffers.buffer(1, count: phases.frameFloats(batch: batch, channels: g.outputChannels))
            phases.split(input, batch: batch, channels: g.inputChannels, layout: layouts.input, into: phasedInput)
            phases.split(outputGradient, batch: batch, channels: g.outputChannels, layout: layouts.output, into: phasedGradient)
            DNNLConvolution.backwardWeight(phases.undilated, precision: precision, input: phasedInput,
                                           outputGradient: phasedGradient, batch: batch * phases.frameCount,
                                           height: phases.frameHeight, width: phases.frameWidth,
                                           weightGradient: weightGradient,
                                           weightGradientLayout: weightGradientLayout(g, gradient: weightGradient),
                                           biasGradient: biasGradient, accumulate: accumulate, layouts: layouts,
                                           algorithm: algorithm)
        }
    }

    public func backwardInput(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                              batch: Int, height: Int, width: Int, inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                              layouts: ConvolutionLayouts = .plain, scratch: UnsafeMutablePointer<Float> = ConvolutionScratch.none) {
        let phases: DilationPhases, algorithm: ConvolutionAlgorithm
        switch kernel(for: g, height: height, width: width) {
        case .oneDNN(let algorithm):
            return DNNLConvolution.backwardInput(g, precision: precision, weight: weight, outputGradient: outputGradient,
                                                 batch: batch, height: height, width: width, inputGradient: inputGradient,
                                                 accumulate: accumulate, layouts: layouts, algorithm: algorithm,
                                                 weightEpoch: weightEpoch)
        case .phases(let p, let a): (phases, algorithm) = (p, a)
        }
        ScratchBuffers.lock.withLock {
            let phasedGradient = ScratchBuffers.buffer(0, count: phases.frameFloats(batch: batch, channels: g.outputChannels))
            let phasedInputGradient = ScratchBuffers.buffer(1, count: phases.frameFloats(batch: batch, channels: g.inputChannels))
            phases.split(outputGradient, batch: batch, channels: g.outputChannels, layout: layouts.output, into: phasedGradient)
            DNNLConvolution.backwardInput(phases.undilated, precision: precision, weight: weight,
                                          outputGradient: phasedGradient, batch: batch * phases.frameCount,
                                          height: phases.frameHeight, width: phases.frameWidth,
                                          inputGradient: phasedInputGradient, accumulate: false, layouts: layouts,
                                          algorithm: algorithm, weightEpoch: weightEpoch)
            phases.merge(phasedInputGradient, batch: batch, channels: g.inputChannels, layout: layouts.input,
                         into: inputGradient, accumulate: accumulate)
        }
    }

    /// Both passes on one conversion of the output gradient: its phase images
    /// (dilated layers) are split once, and its copy in oneDNN's layout is made once.
    public func backward(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                         weightGradient: UnsafeMutablePointer<Float>?, biasGradient: UnsafeMutablePointer<Float>?,
                         accumulateWeightGradient: Bool, inputGradient: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool,
                         layouts: ConvolutionLayouts = .plain, scratch: UnsafeMutablePointer<Float> = ConvolutionScratch.none) {
        let layout = weightGradient.map { weightGradientLayout(g, gradient: $0) } ?? .plain
        let phases: DilationPhases, algorithm: ConvolutionAlgorithm
        switch kernel(for: g, height: height, width: width) {
        case .oneDNN(let algorithm):
            return DNNLConvolution.backward(g, precision: precision, input: input, weight: weight, outputGradient: outputGradient,
                                            batch: batch, height: height, width: width, weightGradient: weightGradient,
                                            weightGradientLayout: layout,
                                            biasGradient: biasGradient, accumulateWeightGradient: accumulateWeightGradient,
                                            inputGradient: inputGradient, accumulateInputGradient: accumulateInputGradient,
                                            layouts: layouts, algorithm: algorithm, weightEpoch: weightEpoch)
        case .phases(let p, let a): (phases, algorithm) = (p, a)
        }
        ScratchBuffers.lock.withLock {
            let phasedGradient = ScratchBuffers.buffer(0, count: phases.frameFloats(batch: batch, channels: g.outputChannels))
            let phasedInput = ScratchBuffers.buffer(1, count: phases.frameFloats(batch: batch, channels: g.inputChannels))
            let phasedInputGradient = ScratchBuffers.buffer(2, count: phases.frameFloats(batch: batch, channels: g.inputChannels))
            phases.split(outputGradient, batch: batch, channels: g.outputChannels, layout: layouts.output, into: phasedGradient)
            if weightGradient != nil {
                phases.split(input, batch: batch, channels: g.inputChannels, layout: layouts.input, into: phasedInput)
            }
            DNNLConvolution.backward(phases.undilated, precision: precision, input: phasedInput, weight: weight,
                                     outputGradient: phasedGradient, batch: batch * phases.frameCount,
                                     height: phases.frameHeight, width: phases.frameWidth, weightGradient: weightGradient,
                                     weightGradientLayout: layout, biasGradient: biasGradient,
                                     accumulateWeightGradient: accumulateWeightGradient,
                                     inputGradient: inputGradient.map { _ in phasedInputGradient }, accumulateInputGradient: false,
                                     layouts: layouts, algorithm: algorithm, weightEpoch: weightEpoch)
            if let inputGradient {
                phases.merge(phasedInputGradient, batch: batch, channels: g.inputChannels, layout: layouts.input,
                             into: inputGradient, accumulate: accumulateInputGradient)
            }
        }
    }

    public func kernelName(_ g: ConvolutionGeometry, batch: Int, height: Int, width: Int) -> String {
        forwardImplementation(g, batch: batch, height: height, width: width, hasBias: false)
    }

    /// oneDNN's name for the kernel a forward convolution of this shape runs
    /// on, e.g. "jit_wino_4x3:avx512_core" or "jit:avx2", after its phases if it has them.
    public func forwardImplementation(_ g: ConvolutionGeometry, batch: Int, height: Int, width: Int, hasBias: Bool) -> String {
        let phases: DilationPhases, algorithm: ConvolutionAlgorithm
        switch kernel(for: g, height: height, width: width) {
        case .oneDNN(let algorithm):
            return DNNLConvolution.forwardImplementation(g, precision: precision, batch: batch, height: height, width: width,
                                                         hasBias: hasBias, algorithm: algorithm)
        case .phases(let p, let a): (phases, algorithm) = (p, a)
        }
        return "\(phases): " + DNNLConvolution.forwardImplementation(
            phases.undilated, precision: precision, batch: batch * phases.frameCount, height: phases.frameHeight,
            width: phases.frameWidth, hasBias: hasBias, algorithm: algorithm)
    }
}

/// How a dilated convolution runs on oneDNN.
public enum DilatedConvolutions: String, CaseIterable, Codable, Sendable {
    /// On its phase images where that was measured to win (`OneDNNConvolutionEngine.phasesWin`),
    /// else on oneDNN's dilated kernels; in float32 the ASPP's branches as one
    /// tap matrix (`DilatedBranchSum`): the default.
    case auto
    /// Always as an undilated convolution on its d x d phase images
    /// (`DilationPhases`), so that every 3x3 layer reaches oneDNN's undilated kernels.
    case phases
    /// oneDNN's own dilated kernels (direct only in oneDNN 2.6): the reference.
    case dilated

    /// Where the dilated layers run, in a few words.
    public var summary: String {
        switch self {
        case .auto: return "on phases where they win"
        case .phases: return "on phases"
        case .dilated: return "on dilated kernels"
        }
    }
}

/// What one layer shape runs on.
public enum LayerKernel: Hashable, Sendable {
    /// A oneDNN primitive of the layer itself, with this algorithm.
    case oneDNN(ConvolutionAlgorithm)
    /// A oneDNN primitive of the undilated layer on the dilated layer's phase images.
    case phases(DilationPhases, ConvolutionAlgorithm)
}

