import Foundation

/// What computes a network's convolutions: forward and both backward passes
/// over NCHW float32 tensors with OIHW weights. A network is given one when it
/// is built (through `Compute`), so that each layer makes one call and never
/// asks which implementation runs.
public protocol ConvolutionEngine: Sendable, CustomStringConvertible {
    /// Whether the passes need im2col scratch (`ConvolutionGeometry.scratchCount` floats).
    var needsScratch: Bool { get }

    /// output (+)= conv(input) (+ bias) for the whole batch, each side in its layout.
    func forward(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, input: UnsafePointer<Float>,
                 batch: Int, height: Int, width: Int, output: UnsafeMutablePointer<Float>, accumulate: Bool,
                 layouts: ConvolutionLayouts, scratch: UnsafeMutablePointer<Float>)

    /// weightGradient (+)= Σₙ outputGradient[n] ⋆ input[n], and the bias gradient (+)= Σ over images and positions.
    func backwardWeight(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                        batch: Int, height: Int, width: Int, weightGradient: UnsafeMutablePointer<Float>,
                        biasGradient: UnsafeMutablePointer<Float>?, accumulate: Bool, layouts: ConvolutionLayouts,
                        scratch: UnsafeMutablePointer<Float>)

    /// Both backward passes of a layer from one output gradient: the weight
    /// gradient (+)= (when `weightGradient` is given) and the input gradient
    /// (+)= (when `inputGradient` is given), each accumulating as its flag says.
    func backward(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                  outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                  weightGradient: UnsafeMutablePointer<Float>?, biasGradient: UnsafeMutablePointer<Float>?,
                  accumulateWeightGradient: Bool, inputGradient: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool,
                  layouts: ConvolutionLayouts, scratch: UnsafeMutablePointer<Float>)

    /// inputGradient (+)= convᵀ(outputGradient).
    func backwardInput(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                       batch: Int, height: Int, width: Int, inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                       layouts: ConvolutionLayouts, scratch: UnsafeMutablePointer<Float>)

    /// What a forward pass of this layer shape runs on, in a few words
    /// (oneDNN's own kernel name where oneDNN runs it).
    func kernelName(_ g: ConvolutionGeometry, batch: Int, height: Int, width: Int) -> String

    /// How this engine writes the weight gradient of a layer of this shape
    /// into `gradient` (the parameter store records it, the optimiser reads it so).
    func weightGradientLayout(_ g: ConvolutionGeometry, gradient: UnsafeRawPointer) -> WeightGradientLayout

    /// Whether this layer reads and writes blocked (nChw16c) activations as
    /// cheaply as plain ones, on the sides whose channels are multiples of 16:
    /// a network keeps the tensors between such layers blocked.
    func exchangesBlockedActivations(_ g: ConvolutionGeometry, height: Int, width: Int) -> Bool

    /// Whether a sum of 3x3 branches at several dilations on one input
    /// (DeepLab's ASPP) runs as one tap matrix (`DilatedBranchSum`) rather
    /// than branch by branch through this engine's layers.
    func runsOnTaps(_ sum: DilatedBranchSum, height: Int, width: Int) -> Bool

    /// This engine for the calls of one network pass (a forward pass and its
    /// backward pass, under weights that do not change in between): weights it
    /// converts into a kernel's layout are converted once, not once per call.
    func reusingConvertedWeights(epoch: Int) -> any ConvolutionEngine
}

extension ConvolutionEngine {
    public func weightGradientLayout(_ g: ConvolutionGeometry, gradient: UnsafeRawPointer) -> WeightGradientLayout { .plain }

    public func exchangesBlockedActivations(_ g: ConvolutionGeometry, height: Int, width: Int) -> Bool { false }

    public func runsOnTaps(_ sum: DilatedBranchSum, height: Int, width: Int) -> Bool { false }

    public func reusingConvertedWeights(epoch: Int) -> any ConvolutionEngine { self }

    /// The two passes one after the other (engines with nothing to share between them).
    public func backward(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                         weightGradient: UnsafeMutablePointer<Float>?, biasGradient: UnsafeMutablePointer<Float>?,
                         accumulateWeightGradient: Bool, inputGradient: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool,
                         layouts: ConvolutionLayouts, scratch: UnsafeMutablePointer<Float>) {
        if let weightGradient {
            backwardWeight(g, input: input, outputGradient: outputGradient, batch: batch, height: height, width: width,
                           weightGradient: weightGradient, biasGradient: biasGradient, accumulate: accumulateWeightGradient,
                           layouts: layouts, scratch: scratch)
        }
        if let inputGradient {
            backwardInput(g, weight: weight, outputGradient: outputGradient, batch: batch, height: height, width: width,
                          inputGradient: inputGradient, accumulate: accumulateInputGradient, layouts: layouts, scratch: scratch)
        }
    }
}

/// The passes on NCHW tensors (tests, and callers that hold no blocked tensors).
extension ConvolutionEngine {
    public func forward(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, input: UnsafePointer<Float>,
                        batch: Int, height: Int, width: Int, output: UnsafeMutablePointer<Float>, accumulate: Bool,
                        scratch: UnsafeMutablePointer<Float>) {
        forward(g, weight: weight, bias: bias, input: input, batch: batch, height: height, width: width, output: output,
                accumulate: accumulate, layouts: .plain, scratch: scratch)
    }

    public func backwardWeight(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                               batch: Int, height: Int, width: Int, weightGradient: UnsafeMutablePointer<Float>,
                               biasGradient: UnsafeMutablePointer<Float>?, accumulate: Bool, scratch: UnsafeMutablePointer<Float>) {
        backwardWeight(g, input: input, outputGradient: outputGradient, batch: batch, height: height, width: width,
                       weightGradient: weightGradient, biasGradient: biasGradient, accumulate: accumulate, layouts: .plain,
                       scratch: scratch)
    }

    public func backward(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                         weightGradient: UnsafeMutablePointer<Float>?, biasGradient: UnsafeMutablePointer<Float>?,
                         accumulateWeightGradient: Bool, inputGradient: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool,
                         scratch: UnsafeMutablePointer<Float>) {
        backward(g, input: input, weight: weight, outputGradient: outputGradient, batch: batch, height: height, width: width,
                 weightGradient: weightGradient, biasGradient: biasGradient, accumulateWeightGradient: accumulateWeightGradient,
                 inputGradient: inputGradient, accumulateInputGradient: accumulateInputGradient, layouts: .plain, scratch: scratch)
    }

    public func backwardInput(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                              batch: Int, height: Int, width: Int, inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                              scratch: UnsafeMutablePointer<Float>) {
        backwardInput(g, weight: weight, outputGradient: outputGradient, batch: batch, height: height, width: width,
                      inputGradient: inputGradient, accumulate: accumulate, layouts: .plain, scratch: scratch)
    }
}

/// im2col + OpenBLAS sgemm, one image at a time: the plain float32 reference.
public struct Im2colConvolutionEngine: ConvolutionEngine {
    public init() {}

    public var needsScratch: Bool { true }
    public var description: String { "im2col + sgemm (fp32)" }

    public func kernelName(_ g: ConvolutionGeometry, batch: Int, height: Int, width: Int) -> String {
        g.isDirectGEMM ? "sgemm" : "im2col + sgemm"
    }

    public func forward(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, input: UnsafePointer<Float>,
                        batch: Int, height: Int, width: Int, output: UnsafeMutablePointer<Float>, accumulate: Bool,
                        layouts: ConvolutionLayouts, scratch: UnsafeMutablePointer<Float>) {
        precondition(layouts == .plain, "im2col convolutions read and write NCHW only")
        Convolution.forward(g, weight: weight, bias: bias, input: input, batch: batch, height: height, width: width,
                            output: output, accumulate: accumulate, scratch: scratch)
    }

    public func backwardWeight(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                               batch: Int, height: Int, width: Int, weightGradient: UnsafeMutablePointer<Float>,
                               biasGradient: UnsafeMutablePointer<Float>?, accumulate: Bool, layouts: ConvolutionLayouts,
                               scratch: UnsafeMutablePointer<Float>) {
        precondition(layouts == .plain, "im2col convolutions read and write NCHW only")
        Convolution.backwardWeight(g, input: input, outputGradient: outputGradient, batch: batch, height: height, width: width,
                                   weightGradient: weightGradient, biasGradient: biasGradient, accumulate: accumulate, scratch: scratch)
    }

    public func backwardInput(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                              batch: Int, height: Int, width: Int, inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                              layouts: ConvolutionLayouts, scratch: UnsafeMutablePointer<Float>) {
        precondition(layouts == .plain, "im2col convolutions read and write NCHW only")
        Convolution.backwardInput(g, weight: weight, outputGradient: outputGradient, batch: batch, height: height, width: width,
                                  inputGradient: inputGradient, accumulate: accumulate, scratch: scratch)
    }
}

/// Scratch for engines that need none.
public enum ConvolutionScratch {
    /// A one-float placeholder, never written.
    nonisolated(unsafe) public static let none = UnsafeMutablePointer<Float>.allocate(capacity: 1)
}
