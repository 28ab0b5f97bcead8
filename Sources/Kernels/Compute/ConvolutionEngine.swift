/// What computes a network's convolutions: forward and both backward passes
/// over NCHW float32 tensors with OIHW weights. A network is given one when it
/// is built (through `Compute`), so that each layer makes one call and never
/// asks which implementation runs.
public protocol ConvolutionEngine: Sendable, CustomStringConvertible {
    /// Whether the passes need im2col scratch (`ConvolutionGeometry.scratchCount` floats).
    var needsScratch: Bool { get }

    /// output (+)= conv(input) (+ bias) for the whole batch.
    func forward(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, input: UnsafePointer<Float>,
                 batch: Int, height: Int, width: Int, output: UnsafeMutablePointer<Float>, accumulate: Bool,
                 scratch: UnsafeMutablePointer<Float>)

    /// weightGradient (+)= Σₙ outputGradient[n] ⋆ input[n], and the bias gradient (+)= Σ over images and positions.
    func backwardWeight(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                        batch: Int, height: Int, width: Int, weightGradient: UnsafeMutablePointer<Float>,
                        biasGradient: UnsafeMutablePointer<Float>?, accumulate: Bool, scratch: UnsafeMutablePointer<Float>)

    /// inputGradient (+)= convᵀ(outputGradient).
    func backwardInput(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                       batch: Int, height: Int, width: Int, inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                       scratch: UnsafeMutablePointer<Float>)
}

/// im2col + OpenBLAS sgemm, one image at a time: the plain float32 reference.
public struct Im2colConvolutionEngine: ConvolutionEngine {
    public init() {}

    public var needsScratch: Bool { true }
    public var description: String { "im2col + sgemm (fp32)" }

    public func forward(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, input: UnsafePointer<Float>,
                        batch: Int, height: Int, width: Int, output: UnsafeMutablePointer<Float>, accumulate: Bool,
                        scratch: UnsafeMutablePointer<Float>) {
        Convolution.forward(g, weight: weight, bias: bias, input: input, batch: batch, height: height, width: width,
                            output: output, accumulate: accumulate, scratch: scratch)
    }

    public func backwardWeight(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                               batch: Int, height: Int, width: Int, weightGradient: UnsafeMutablePointer<Float>,
                               biasGradient: UnsafeMutablePointer<Float>?, accumulate: Bool, scratch: UnsafeMutablePointer<Float>) {
        Convolution.backwardWeight(g, input: input, outputGradient: outputGradient, batch: batch, height: height, width: width,
                                   weightGradient: weightGradient, biasGradient: biasGradient, accumulate: accumulate, scratch: scratch)
    }

    public func backwardInput(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                              batch: Int, height: Int, width: Int, inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                              scratch: UnsafeMutablePointer<Float>) {
        Convolution.backwardInput(g, weight: weight, outputGradient: outputGradient, batch: batch, height: height, width: width,
                                  inputGradient: inputGradient, accumulate: accumulate, scratch: scratch)
    }
}

/// oneDNN's convolution primitives in one precision, Winograd or direct as
/// the algorithm resolves per layer shape (the resolved choice is part of the
/// cached primitive's key, so a layer's plan is chosen once).
public struct OneDNNConvolutionEngine: ConvolutionEngine {
    public let precision: ConvolutionPrecision
    public let algorithm: ConvolutionAlgorithm
    /// The fewest input and output channels a layer needs to run Winograd.
    public let winogradMinimumChannels: Int

    public init(precision: ConvolutionPrecision = .fp32, algorithm: ConvolutionAlgorithm = .winograd,
                winogradMinimumChannels: Int = ConvolutionAlgorithm.referenceWinogradMinimumChannels) {
        self.precision = precision
        self.algorithm = algorithm
        self.winogradMinimumChannels = winogradMinimumChannels
    }

    public var needsScratch: Bool { false }
    public var description: String {
        precision == .bf16 && !DNNLRuntime.hasNativeBFloat16 ? "oneDNN bf16, emulated"
            : "oneDNN \(precision.rawValue)" + (precision == .fp32 ? ", \(algorithm.rawValue)" : "")
    }

    /// The algorithm a layer of this shape runs with.
    public func algorithm(for g: ConvolutionGeometry) -> ConvolutionAlgorithm {
        algorithm.resolved(for: g, precision: precision, winogradMinimumChannels: winogradMinimumChannels)
    }

    public func forward(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, input: UnsafePointer<Float>,
                        batch: Int, height: Int, width: Int, output: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                        scratch: UnsafeMutablePointer<Float> = ConvolutionScratch.none) {
        DNNLConvolution.forward(g, precision: precision, weight: weight, bias: bias, input: input, batch: batch, height: height,
                                width: width, output: output, accumulate: accumulate, algorithm: algorithm(for: g))
    }

    public func backwardWeight(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                               batch: Int, height: Int, width: Int, weightGradient: UnsafeMutablePointer<Float>,
                               biasGradient: UnsafeMutablePointer<Float>?, accumulate: Bool,
                               scratch: UnsafeMutablePointer<Float> = ConvolutionScratch.none) {
        DNNLConvolution.backwardWeight(g, precision: precision, input: input, outputGradient: outputGradient, batch: batch,
                                       height: height, width: width, weightGradient: weightGradient, biasGradient: biasGradient,
                                       accumulate: accumulate, algorithm: algorithm(for: g))
    }

    public func backwardInput(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                              batch: Int, height: Int, width: Int, inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                              scratch: UnsafeMutablePointer<Float> = ConvolutionScratch.none) {
        DNNLConvolution.backwardInput(g, precision: precision, weight: weight, outputGradient: outputGradient, batch: batch,
                                      height: height, width: width, inputGradient: inputGradient, accumulate: accumulate,
                                      algorithm: algorithm(for: g))
    }

    /// oneDNN's name for the kernel a forward convolution of this shape runs
    /// on, e.g. "jit_wino_4x3:avx512_core" or "jit:avx2".
    public func forwardImplementation(_ g: ConvolutionGeometry, batch: Int, height: Int, width: Int, hasBias: Bool) -> String {
        DNNLConvolution.forwardImplementation(g, precision: precision, batch: batch, height: height, width: width, hasBias: hasBias,
                                              algorithm: algorithm(for: g))
    }
}

/// Scratch for engines that need none.
public enum ConvolutionScratch {
    /// A one-float placeholder, never written.
    nonisolated(unsafe) public static let none = UnsafeMutablePointer<Float>.allocate(capacity: 1)
}
