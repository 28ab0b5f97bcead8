import Kernels
import TestSupport
import XCTest

/// Finite-difference checks of every layer's backward pass on tiny shapes.
/// Each check differentiates the scalar L = Σ r·y for a fixed random r, so the
/// analytic gradient is the backward pass fed with r. Differences are central,
/// evaluated in Float with Double accumulation of L.
final class GradientCheckTests: XCTestCase {
    private var generator = SeededGenerator(seed: 12345)

    private func random(_ count: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &generator) }
    }

    private func dot(_ a: [Float], _ b: [Float]) -> Double {
        zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// Compares analytic and central-difference derivatives at a sample of indices.
    private func check(_ name: String, parameters: inout [Float], analytic: [Float], step: Float = 1e-2,
                       tolerance: Double = 2e-3, samples: Int = 40, objective: ([Float]) -> Double) {
        let indices = parameters.count <= samples ? Array(0..<parameters.count)
            : (0..<samples).map { _ in Int.random(in: 0..<parameters.count, using: &generator) }
        let scale = max(1e-3, analytic.map { Double(abs($0)) }.max() ?? 0)
        for i in indices {
            let saved = parameters[i]
            parameters[i] = saved + step
            let plus = objective(parameters)
            parameters[i] = saved - step
            let minus = objective(parameters)
            parameters[i] = saved
            let numeric = (plus - minus) / Double(2 * step)
            XCTAssertEqual(Double(analytic[i]), numeric, accuracy: tolerance * scale,
                           "\(name)[\(i)]: analytic \(analytic[i]) numeric \(numeric)")
        }
    }

    private func convolutionCase(_ g: ConvolutionGeometry, batch: Int, height: Int, width: Int, bias: Bool) {
        let (outH, outW) = g.outputSize(height: height, width: width)
        var x = random(batch * g.inputChannels * height * width)
        var w = random(g.weightCount)
        var b = bias ? random(g.outputChannels) : []
        let r = random(batch * g.outputChannels * outH * outW)
        var scratch = [Float](repeating: 0, count: max(1, g.scratchCount(height: height, width: width)))
        func run(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: r.count)
            x.withUnsafeBufferPointer { x in w.withUnsafeBufferPointer { w in b.withUnsafeBufferPointer { b in
                y.withUnsafeMutableBufferPointer { y in scratch.withUnsafeMutableBufferPointer { s in
                    Convolution.forward(g, weight: w.baseAddress!, bias: bias ? b.baseAddress! : nil, input: x.baseAddress!,
                                        batch: batch, height: height, width: width, output: y.baseAddress!, scratch: s.baseAddress!)
                } }
            } } }
            return y
        }
        var dx = [Float](repeating: 7, count: x.count)  // overwritten: accumulate is false
        var dw = [Float](repeating: 0, count: w.count)
        var db = [Float](repeating: 0, count: g.outputChannels)
        r.withUnsafeBufferPointer { r in w.withUnsafeBufferPointer { w in x.withUnsafeBufferPointer { x in
            scratch.withUnsafeMutableBufferPointer { s in
                dx.withUnsafeMutableBufferPointer { dx in
                    Convolution.backwardInput(g, weight: w.baseAddress!, outputGradient: r.baseAddress!, batch: batch,
                                              height: height, width: width, inputGradient: dx.baseAddress!,
                                              accumulate: false, scratch: s.baseAddress!)
                }
                dw.withUnsafeMutableBufferPointer { dw in db.withUnsafeMutableBufferPointer { db in
                    Convolution.backwardWeight(g, input: x.baseAddress!, outputGradient: r.baseAddress!, batch: batch,
                                               height: height, width: width, weightGradient: dw.baseAddress!,
                                               biasGradient: bias ? db.baseAddress! : nil, accumulate: false,
                                               scratch: s.baseAddress!)
                } }
            }
        } } }
        let label = "conv k\(g.kernel) s\(g.stride) p\(g.padding) d\(g.dilation) \(height)x\(width)"
        check("\(label) dx", parameters: &x, analytic: dx) { dot(run($0, w, b), r) }
        check("\(label) dw", parameters: &w, analytic: dw) { dot(run(x, $0, b), r) }
        if bias { check("\(label) db", parameters: &b, analytic: db) { dot(run(x, w, $0), r) } }
    }

    func testConvolution3x3Stride1() {
        convolutionCase(ConvolutionGeometry(inputChannels: 3, outputChannels: 4, kernel: 3, padding: 1), batch: 2, height: 5, width: 7, bias: true)
    }

    func testConvolution3x3Stride2OddSizes() {
        convolutionCase(ConvolutionGeometry(inputChannels: 2, outputChannels: 3, kernel: 3, stride: 2, padding: 1), batch: 2, height: 7, width: 6, bias: false)
    }

    func testConvolutionDilation2() {
        convolutionCase(ConvolutionGeometry(inputChannels: 3, outputChannels: 2, kernel: 3, padding: 2, dilation: 2), batch: 1, height: 6, width: 9, bias: false)
    }

    func testConvolutionDilation4LargerThanTheImage() {
        // At the network's stride-8 maps the dilation-4 taps mostly fall in the padding.
        convolutionCase(ConvolutionGeometry(inputChannels: 2, outputChannels: 3, kernel: 3, padding: 4, dilation: 4), batch: 2, height: 5, width: 3, bias: false)
    }

    func testConvolution1x1DirectAndStrided() {
        convolutionCase(ConvolutionGeometry(inputChannels: 4, outputChannels: 3, kernel: 1), batch: 2, height: 3, width: 5, bias: true)
        convolutionCase(ConvolutionGeometry(inputChannels: 4, outputChannels: 3, kernel: 1, stride: 2), batch: 2, height: 5, width: 4, bias: false)
    }

    func testConvolutionAccumulatesWhenAsked() {
        let g = ConvolutionGeometry(inputChannels: 1, outputChannels: 1, kernel: 1)
        var y: [Float] = [10, 20]
        var scratch: [Float] = [0]
        let x: [Float] = [1, 2], w: [Float] = [3]
        Convolution.forward(g, weight: w, bias: nil, input: x, batch: 1, height: 1, width: 2, output: &y, accumulate: true, scratch: &scratch)
        XCTAssertEqual(y, [13, 26])
    }

    func testFrozenBatchNormReLU() {
        let batch = 2, channels = 3, plane = 4
        // Inputs kept away from the ReLU's kink at 0 after the affine map.
        var x = random(batch * channels * plane).map { $0 >= 0 ? $0 + 0.5 : $0 - 0.5 }
        let weight: [Float] = [1.2, 0.7, 1.0], bias: [Float] = [0, 0, 0], mean: [Float] = [0, 0, 0], variance: [Float] = [1, 0.5, 2]
        var scale = [Float](repeating: 0, count: channels), shift = [Float](repeating: 0, count: channels)
        FrozenBatchNorm.fold(weight: weight, bias: bias, mean: mean, variance: variance, channels: channels, scale: &scale, shift: &shift)
        XCTAssertEqual(scale[1], Float(0.7 / (0.5 + 1e-5).squareRoot()), accuracy: 1e-7, "eps must be 1e-5")
        let r = random(x.count)
        func run(_ x: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: x.count)
            FrozenBatchNorm.forwardReLU(input: x, output: &y, scale: scale, shift: shift, batch: batch, channels: channels, plane: plane)
            return y
        }
        var dx = [Float](repeating: 0, count: x.count)
        FrozenBatchNorm.backwardReLU(output: run(x), outputGradient: r, inputGradient: &dx, accumulate: false,
                                     scale: scale, batch: batch, channels: channels, plane: plane)
        check("bn-relu dx", parameters: &x, analytic: dx, step: 1e-3) { dot(run($0), r) }
    }

    func testChannelDropoutIsItsOwnBackwardAndDependsOnlyOnTheKey() {
        let batch = 3, channels = 64, plane = 5
        let context = DropoutContext(random: CounterRandom(seed: 9), step: 4, firstSampleIndex: 10)
        var mask = [Float](repeating: -1, count: batch * channels)
        ChannelDropout.drawMask(probability: 0.3, context: context, layer: 2, batch: batch, channels: channels, mask: &mask)
        XCTAssertTrue(mask.allSatisfy { $0 == 0 || abs($0 - 1 / 0.7) < 1e-6 })
        let dropped = mask.filter { $0 == 0 }.count
        XCTAssertGreaterThan(dropped, 20)
        XCTAssertLessThan(dropped, 100)
        // Sample 11 of the global batch gets the same mask whichever rank draws it.
        var single = [Float](repeating: -1, count: channels)
        ChannelDropout.drawMask(probability: 0.3, context: DropoutContext(random: CounterRandom(seed: 9), step: 4, firstSampleIndex: 11),
                                layer: 2, batch: 1, channels: channels, mask: &single)
        XCTAssertEqual(single, Array(mask[channels..<(2 * channels)]))
        // Linear in the input: the backward is the same multiplication.
        var x = random(batch * channels * plane)
        let r = random(x.count)
        func run(_ x: [Float]) -> [Float] {
            var y = x
            ChannelDropout.apply(mask: mask, to: &y, batch: batch, channels: channels, plane: plane)
            return y
        }
        var dx = r
        ChannelDropout.apply(mask: mask, to: &dx, batch: batch, channels: channels, plane: plane)
        check("dropout dx", parameters: &x, analytic: dx) { dot(run($0), r) }
    }

    func testGlobalAveragePool() {
        let batch = 2, channels = 3, plane = 6
        var x = random(batch * channels * plane)
        let r = random(batch * channels)
        func run(_ x: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: batch * channels)
            GlobalAveragePool.forward(input: x, output: &y, batch: batch, channels: channels, plane: plane)
            return y
        }
        var dx = [Float](repeating: 0, count: x.count)
        GlobalAveragePool.backward(outputGradient: r, inputGradient: &dx, batch: batch, channels: channels, plane: plane)
        check("gap dx", parameters: &x, analytic: dx) { dot(run($0), r) }
    }

    func testMultilabelSoftMarginLoss() {
        let batch = 3, classes = 5
        var z = random(batch * classes, in: -4...4)
        let y = (0..<(batch * classes)).map { _ in Float(Int.random(in: 0...1, using: &generator)) }
        var gradient = [Float](repeating: 0, count: z.count)
        let loss = MultilabelSoftMarginLoss.evaluate(logits: z, targets: y, batch: batch, classes: classes, normalizer: 6,
                                                     weight: 5, gradient: &gradient)
        // Against the definition, term by term.
        var expected = 0.0
        for i in 0..<z.count {
            let s = 1 / (1 + exp(-Double(z[i])))
            expected -= Double(y[i]) * log(s) + (1 - Double(y[i])) * log(1 - s)
        }
        XCTAssertEqual(loss, expected / Double(classes * 6), accuracy: 1e-12)
        check("loss dz", parameters: &z, analytic: gradient, step: 1e-2, tolerance: 1e-3) {
            5 * MultilabelSoftMarginLoss.evaluate(logits: $0, targets: y, batch: batch, classes: classes, normalizer: 6)
        }
        // Extreme logits stay finite.
        let extreme = MultilabelSoftMarginLoss.evaluate(logits: [100, -100], targets: [0, 1], batch: 1, classes: 2)
        XCTAssertEqual(extreme, 100, accuracy: 1e-9)
    }
}

