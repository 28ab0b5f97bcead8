import Kernels

/// The MSC wrapper's forward, loss and backward (deeplab-v2.md 3 and 4.5).
extension DeepLabV2 {
    /// One MSC output: its name in the reference's terms, size and values [N, classes, h, w].
    public struct Output {
        public let name: String
        public let height, width: Int
        public let values: [Float]
    }

    /// The loss of one sub-batch: per output (scale 1, each extra scale,
    /// then the max), the mean cross-entropy over its labelled pixels, and their sum.
    public struct Loss {
        public let terms: [Double]
        public var total: Double { terms.reduce(0, +) }
    }

    /// Names of the outputs in the reference's order: s1, s0.5, s0.75, max.
    public var outputNames: [String] {
        ["s1"] + configuration.scales.map { "s\(Self.scaleName($0))" } + ["max"]
    }

    static func scaleName(_ scale: Double) -> String {
        scale == scale.rounded() ? String(Int(scale)) : String(scale)
    }

    /// Eval mode: the pixel-wise maximum of the scale-1 logits and every
    /// extra scale's logits resized to them, [N, classes, h, w] with
    /// (h, w) = `outputSize(height:width:)`.
    public func predict(input: UnsafePointer<Float>, batch: Int, height: Int, width: Int) -> [Float] {
        let branches = runBranches(input: input, batch: batch, height: height, width: width, training: false)
        var fused = [Float](repeating: 0, count: batch * configuration.classes * branches[0].outputSize.height * branches[0].outputSize.width)
        var winners = [UInt8](repeating: 0, count: fused.count)
        fuse(branches, into: &fused, winners: &winners)
        return fused
    }

    /// Train mode: every output (scale 1, the extra scales at their own
    /// size, the max), for tests and inspection.
    public func trainingOutputs(input: UnsafePointer<Float>, batch: Int, height: Int, width: Int) -> [Output] {
        let branches = runBranches(input: input, batch: batch, height: height, width: width, training: true)
        var fused = [Float](repeating: 0, count: batch * configuration.classes * branches[0].outputSize.height * branches[0].outputSize.width)
        var winners = [UInt8](repeating: 0, count: fused.count)
        fuse(branches, into: &fused, winners: &winners)
        let names = outputNames
        var outputs = branches.enumerated().map { index, branch in
            Output(name: names[index], height: branch.outputSize.height, width: branch.outputSize.width,
                   values: Array(UnsafeBufferPointer(start: branch.logits, count: batch * configuration.classes
                                                     * branch.outputSize.height * branch.outputSize.width)))
        }
        outputs.append(Output(name: "max", height: branches[0].outputSize.height, width: branches[0].outputSize.width, values: fused))
        return outputs
    }

    /// One sub-batch's forward, loss and backward: labels [N, H, W] (0..<classes,
    /// 255 ignored) are resized to each output with Pillow's nearest rule.
    /// `normalizers` turns this rank's labelled-pixel counts per output into
    /// the divisors (their sum over the ranks sharing the sub-batch; the
    /// identity on one rank). Gradients, times `weight` (1 / ITER_SIZE), go
    /// into `store.gradients`, added with `accumulate`; with `inputGradient`
    /// the input's gradient is written there too. `gradientsReady`, for the
    /// last part of a step, hears the start of each finished tail of the
    /// gradient buffer during the last branch's backward (for overlapped allreduces).
    public func trainingStep(input: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, height: Int, width: Int,
                             weight: Float = 1, accumulate: Bool = false,
                             normalizers: ([Int]) throws -> [Double] = { $0.map(Double.init) },
                             inputGradient: UnsafeMutablePointer<Float>? = nil,
                             gradientsReady: ((Int) -> Void)? = nil) rethrows -> Loss {
        let classes = configuration.classes
        let branches = runBranches(input: input, batch: batch, height: height, width: width, training: true)
        let (h1, w1) = branches[0].outputSize
        let mainCount = batch * classes * h1 * w1
        var fused = [Float](repeating: 0, count: mainCount)
        var winners = [UInt8](repeating: 0, count: mainCount)
        fuse(branches, into: &fused, winners: &winners)

        // Labels at every output's size: the branches', then the max's (scale 1's size).
        let sizes: [(height: Int, width: Int)] = branches.map(\.outputSize) + [(h1, w1)]
        let resized: [[Int32]] = sizes.map { size in
            var target = [Int32](repeating: 0, count: batch * size.height * size.width)
            NearestResize.resize(labels, planes: batch, height: height, width: width, output: &target,
                                 newHeight: size.height, newWidth: size.width)
            return target
        }
        let counts = resized.map { SoftmaxCrossEntropy.labelledCount($0, count: $0.count) }
        let divisors = try normalizers(counts)
        precondition(divisors.count == counts.count, "one normaliser per output")

        var terms: [Double] = []
        for (index, branch) in branches.enumerated() {
            let size = branch.outputSize
            terms.append(SoftmaxCrossEntropy.evaluate(logits: branch.logits, labels: resized[index], batch: batch, classes: classes,
                                                      plane: size.height * size.width, normalizer: divisors[index], weight: weight,
                                                      gradient: branch.logitGradient))
        }
        var fusedGradient = [Float](repeating: 0, count: mainCount)
        terms.append(SoftmaxCrossEntropy.evaluate(logits: fused, labels: resized[branches.count], batch: batch, classes: classes,
                                                  plane: h1 * w1, normalizer: divisors[branches.count], weight: weight,
                                                  gradient: &fusedGradient))
        routeFusedGradient(fusedGradient, winners: winners, branches: branches, batch: batch)

        // runBranches folded the BatchNorms; nothing has changed them since.
        for (index, branch) in branches.enumerated() {
            let size = index == 0 ? (height: height, width: width) : scaleSizes(height: height, width: width)[index]
            let pass = makePass(batch: batch, height: height, width: width, accumulate: accumulate || index > 0)
            backwardBranch(pass, branch, wantInputGradient: inputGradient != nil,
                           gradientsReady: index == branches.count - 1 ? gradientsReady : nil)
            guard let inputGradient else { continue }
            let planes = batch * 3
            if index == 0 {
                inputGradient.update(from: branch.inputGradient, count: planes * height * width)
            } else {
                let factor = configuration.scales[index - 1]
                BilinearResize.resizeTranspose(branch.inputGradient, planes: planes, height: height, width: width,
                                               newHeight: size.height, newWidth: size.width, inputGradient: inputGradient,
                                               scale: BilinearResize.scale(factor: factor, rule: configuration.inputResize))
            }
        }
        return Loss(terms: terms)
    }

    // MARK: Steps

    /// Every branch's forward; the extra scales' inputs are resized first.
    func runBranches(input: UnsafePointer<Float>, batch: Int, height: Int, width: Int, training: Bool) -> [ScalePass] {
        foldBatchNorms()
        let sizes = scaleSizes(height: height, width: width)
        return sizes.enumerated().map { index, size in
            let branch = self.pass(batch: batch, height: size.height, width: size.width, training: training)
            if index == 0 {
                branch.input.update(from: input, count: batch * 3 * height * width)
            } else {
                BilinearResize.resize(input, planes: batch * 3, height: height, width: width, output: branch.input,
                                      newHeight: size.height, newWidth: size.width,
                                      scale: BilinearResize.scale(factor: configuration.scales[index - 1], rule: configuration.inputResize))
            }
            forwardBranch(makePass(batch: batch, height: height, width: width, accumulate: false), branch)
            return branch
        }
    }

    /// fused = max(scale 1, each extra scale resized to scale 1's size);
    /// `winners` records which (the lowest index on ties).
    func fuse(_ branches: [ScalePass], into fused: inout [Float], winners: inout [UInt8]) {
        let batch = branches[0].activations.batch, classes = configuration.classes
        let (h1, w1) = branches[0].outputSize
        let count = batch * classes * h1 * w1
        fused.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: branches[0].logits, count: count) }
        for i in 0..<count { winners[i] = 0 }
        var upsampled = [Float](repeating: 0, count: count)
        for (index, branch) in branches.enumerated().dropFirst() {
            BilinearResize.resize(branch.logits, planes: batch * classes, height: branch.outputSize.height, width: branch.outputSize.width,
                                  output: &upsampled, newHeight: h1, newWidth: w1)
            for i in 0..<count where upsampled[i] > fused[i] {
                fused[i] = upsampled[i]
                winners[i] = UInt8(index)
            }
        }
    }

    /// The max's gradient goes to the branch that won each element: scale 1's
    /// directly, the others' through the transpose of their upsampling.
    func routeFusedGradient(_ gradient: [Float], winners: [UInt8], branches: [ScalePass], batch: Int) {
        let classes = configuration.classes
        let (h1, w1) = branches[0].outputSize
        let count = batch * classes * h1 * w1
        let main = branches[0].logitGradient
        for i in 0..<count where winners[i] == 0 { main[i] += gradient[i] }
        var routed = [Float](repeating: 0, count: count)
        for (index, branch) in branches.enumerated().dropFirst() {
            for i in 0..<count { routed[i] = winners[i] == UInt8(index) ? gradient[i] : 0 }
            BilinearResize.resizeTranspose(routed, planes: batch * classes, height: branch.outputSize.height,
                                           width: branch.outputSize.width, newHeight: h1, newWidth: w1,
                                           inputGradient: branch.logitGradient)
        }
    }
}
