import Kernels

/// A convolution whose OIHW weight (and, for DeepLab's ASPP, bias) lives in
/// the parameter store; every backbone convolution is bias-free.
struct Conv2D {
    let name: String
    let geometry: ConvolutionGeometry
    let weight: ParameterID
    let bias: ParameterID?
    let isTrainable: Bool

    init(_ name: String, _ geometry: ConvolutionGeometry, trainable: Bool, bias hasBias: Bool = false,
         layout: inout ParameterStore.Layout) {
        self.name = name
        self.geometry = geometry
        self.isTrainable = trainable
        weight = layout.addConvolutionWeight("\(name).weight", geometry: geometry, trainable: trainable)
        bias = hasBias ? layout.add("\(name).bias", shape: [geometry.outputChannels], trainable: trainable) : nil
    }

    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        geometry.outputSize(height: height, width: width)
    }

    /// Whether this layer, on inputs of this size, can read and write blocked tensors.
    func exchangesBlocked(_ pass: Pass, height: Int, width: Int) -> Bool {
        pass.convolutions.exchangesBlockedActivations(geometry, height: height, width: width)
    }

    /// output (+)= conv(input), each side in its layout.
    func forward(_ pass: Pass, input: UnsafePointer<Float>, height: Int, width: Int,
                 output: UnsafeMutablePointer<Float>, accumulate: Bool = false, layouts: ConvolutionLayouts = .plain) {
        pass.convolutions.forward(geometry, weight: pass.store.pointer(weight), bias: bias.map { UnsafePointer(pass.store.pointer($0)) },
                                  input: input, batch: pass.batch, height: height, width: width, output: output,
                                  accumulate: accumulate, layouts: layouts, scratch: pass.scratch)
    }

    /// Weight gradient from the layer's input and output gradient (trainable
    /// layers only), and, when `inputGradient` is given, the input gradient
    /// (added to it with `accumulate`).
    func backward(_ pass: Pass, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                  height: Int, width: Int, inputGradient: UnsafeMutablePointer<Float>?, accumulate: Bool = false,
                  layouts: ConvolutionLayouts = .plain) {
        pass.convolutions.backward(geometry, input: input, weight: pass.store.pointer(weight), outputGradient: outputGradient,
                                   batch: pass.batch, height: height, width: width,
                                   weightGradient: isTrainable ? pass.store.gradientPointer(weight) : nil,
                                   biasGradient: isTrainable ? bias.map { pass.store.gradientPointer($0) } : nil,
                                   accumulateWeightGradient: pass.accumulateGradients, inputGradient: inputGradient,
                                   accumulateInputGradient: accumulate, layouts: layouts, scratch: pass.scratch)
    }
}
