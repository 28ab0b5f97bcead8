import Kernels

/// DeepLab-v2's atrous spatial pyramid pooling head: four 3x3 convolutions
/// with bias at dilations 6, 12, 18 and 24 (padding = dilation), summed in
/// branch order, straight to the class logits (deeplab-v2.md 1.5).
struct ASPP {
    static let referenceRates = [6, 12, 18, 24]
    let branches: [Conv2D]
    let classes: Int
    /// The branches as one sum, for engines that run it on a tap matrix.
    let sum: DilatedBranchSum

    init(prefix: String, inputChannels: Int, classes: Int, rates: [Int] = ASPP.referenceRates, layout: inout ParameterStore.Layout) {
        self.classes = classes
        branches = rates.enumerated().map { index, rate in
            Conv2D("\(prefix)aspp.c\(index)",
                   ConvolutionGeometry(inputChannels: inputChannels, outputChannels: classes, kernel: 3, padding: rate, dilation: rate),
                   trainable: true, bias: true, layout: &layout)
        }
        sum = DilatedBranchSum(inputChannels: inputChannels, outputChannels: classes, dilations: rates)
    }

    func scratchCount(height: Int, width: Int) -> Int {
        branches.map { $0.geometry.scratchCount(height: height, width: width) }.max() ?? 0
    }

    func macs(height: Int, width: Int) -> Int { branches.reduce(0) { $0 + $1.geometry.macs(height: height, width: width) } }

    /// The reference's initialisation: weights N(0, 0.01), biases 0 (seeded here).
    func initialize(_ store: ParameterStore, seed: UInt64) {
        let random = CounterRandom(seed: seed)
        for (index, branch) in branches.enumerated() {
            let weight = store.pointer(branch.weight)
            for i in 0..<branch.geometry.weightCount {
                weight[i] = Float(0.01 * random.normal(0x4153_5050, UInt64(index), UInt64(i), 0))
            }
            if let bias = branch.bias { store.pointer(bias).update(repeating: 0, count: classes) }
        }
    }

    /// Whether this pass runs the branches as one tap matrix (`DilatedBranchSum`).
    func runsOnTaps(_ pass: Pass, height: Int, width: Int) -> Bool {
        pass.convolutions.runsOnTaps(sum, height: height, width: width)
    }

    /// Whether the branches read features kept blocked (the tap matrix reads either layout).
    func exchangesBlocked(_ pass: Pass, height: Int, width: Int) -> Bool {
        runsOnTaps(pass, height: height, width: width)
            || branches.allSatisfy { $0.exchangesBlocked(pass, height: height, width: width) }
    }

    /// logits [N, classes, h, w] = Σ branches(features [N, C, h, w]), the features in `featureLayout`.
    func forward(_ pass: Pass, features: UnsafePointer<Float>, height: Int, width: Int, logits: UnsafeMutablePointer<Float>,
                 featureLayout: ActivationLayout = .plain) {
        if runsOnTaps(pass, height: height, width: width) {
            return sum.forward(weights: branches.map { UnsafePointer(pass.store.pointer($0.weight)) },
                               biases: branches.map { UnsafePointer(pass.store.pointer($0.bias!)) }, input: features,
                               inputLayout: featureLayout, batch: pass.batch, height: height, width: width, output: logits,
                               accumulate: false)
        }
        for (index, branch) in branches.enumerated() {
            branch.forward(pass, input: features, height: height, width: width, output: logits, accumulate: index > 0,
                           layouts: .init(input: featureLayout))
        }
    }

    /// Weight and bias gradients of every branch, and the features' gradient (written).
    func backward(_ pass: Pass, features: UnsafePointer<Float>, logitGradient: UnsafePointer<Float>, height: Int, width: Int,
                  featureGradient: UnsafeMutablePointer<Float>, featureLayout: ActivationLayout = .plain) {
        if runsOnTaps(pass, height: height, width: width) {
            let store = pass.store
            return sum.backward(weights: branches.map { UnsafePointer(store.pointer($0.weight)) }, input: features,
                                inputLayout: featureLayout, outputGradient: logitGradient, batch: pass.batch, height: height,
                                width: width,
                                weightGradients: branches.map { (store.gradientPointer($0.weight), store.entry($0.weight).gradientLayout) },
                                biasGradients: branches.map { store.gradientPointer($0.bias!) },
                                accumulateWeightGradient: pass.accumulateGradients, inputGradient: featureGradient,
                                accumulateInputGradient: false)
        }
        for (index, branch) in branches.enumerated() {
            branch.backward(pass, input: features, outputGradient: logitGradient, height: height, width: width,
                            inputGradient: featureGradient, accumulate: index > 0, layouts: .init(input: featureLayout))
        }
    }
}
