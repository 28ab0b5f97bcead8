import Kernels
import TestSupport
import XCTest

/// The ASPP's tap matrix (`DilatedBranchSum`) against its branches run one by
/// one on the im2col reference: the forward sum with biases, every weight and
/// bias gradient (plain and oneDNN-blocked gradient layouts), and the input
/// gradient, with blocked and plain inputs, each pass written and accumulated.
/// The sizes leave taps that reach no pixel (dilation at least the map's
/// side, along one side or both) and rows that reach only part of the map.
final class DilatedBranchSumTests: XCTestCase {
    private var generator = SeededGenerator(seed: 2424)

    private func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &generator) } }

    struct Case {
        let channels, outputs, batch, height, width: Int
        let dilations: [Int]
        let layout: ActivationLayout
    }

    static let cases: [Case] = [
        // DeepLab's rates on a 13 x 13 map (the golden's): 18 and 24 reach the centre tap only.
        Case(channels: 32, outputs: 5, batch: 2, height: 13, width: 13, dilations: [6, 12, 18, 24], layout: .blocked16),
        // Non-square: dilation 8 reaches past the width only, 5 past neither side.
        Case(channels: 16, outputs: 3, batch: 1, height: 11, width: 7, dilations: [2, 5, 8], layout: .plain),
        // 16 outputs: oneDNN's blocked weight-gradient layout.
        Case(channels: 32, outputs: 16, batch: 2, height: 9, width: 10, dilations: [1, 3, 9], layout: .blocked16),
        Case(channels: 32, outputs: 5, batch: 1, height: 11, width: 12, dilations: [6, 12], layout: .blocked8),
    ]

    private struct Results { var y, dx, db: [Float]; var dw: [[Float]] }

    /// The reference: each branch on im2col, all NCHW; the output and input gradient of the sum.
    private func reference(_ c: Case, x: [Float], w: [[Float]], b: [[Float]], dy: [Float], start: Results,
                           accumulate: Bool) -> Results {
        var out = start
        var scratch = [Float](repeating: 0, count: 9 * c.channels * c.height * c.width)
        for (index, d) in c.dilations.enumerated() {
            let g = ConvolutionGeometry(inputChannels: c.channels, outputChannels: c.outputs, kernel: 3, padding: d, dilation: d)
            let add = index > 0 || accumulate
            Convolution.forward(g, weight: w[index], bias: b[index], input: x, batch: c.batch, height: c.height, width: c.width,
                                output: &out.y, accumulate: add, scratch: &scratch)
            Convolution.backwardInput(g, weight: w[index], outputGradient: dy, batch: c.batch, height: c.height, width: c.width,
                                      inputGradient: &out.dx, accumulate: add, scratch: &scratch)
        }
        return out
    }

    /// The tap matrix, with the input (and its gradient) in the case's layout.
    private func taps(_ c: Case, x: [Float], w: [[Float]], b: [[Float]], dy: [Float], start: Results, accumulate: Bool,
                      gradientLayout: WeightGradientLayout) -> (Results, biasGradients: [[Float]]) {
        let sum = DilatedBranchSum(inputChannels: c.channels, outputChannels: c.outputs, dilations: c.dilations)
        let plane = c.height * c.width
        func relayout(_ v: [Float], _ from: ActivationLayout, _ to: ActivationLayout) -> [Float] {
            var out = [Float](repeating: .nan, count: v.count)
            ActivationLayout.convert(v, from: from, into: &out, to: to, batch: c.batch, channels: c.channels, plane: plane)
            return out
        }
        func toGradientLayout(_ v: [Float]) -> [Float] {
            var out = [Float](repeating: .nan, count: v.count)
            for o in 0..<c.outputs { for i in 0..<c.channels { for t in 0..<9 {
                out[gradientLayout.element(output: o, input: i, tap: t, inputs: c.channels, taps: 9)] = v[(o * c.channels + i) * 9 + t]
            } } }
            return out
        }
        func fromGradientLayout(_ v: [Float]) -> [Float] {
            var out = v
            for o in 0..<c.outputs { for i in 0..<c.channels { for t in 0..<9 {
                out[(o * c.channels + i) * 9 + t] = v[gradientLayout.element(output: o, input: i, tap: t, inputs: c.channels, taps: 9)]
            } } }
            return out
        }
        let xl = relayout(x, .plain, c.layout)
        var y = start.y
        var dxl = relayout(start.dx, .plain, c.layout)
        var dws = start.dw.map(toGradientLayout)
        var dbs = [[Float]](repeating: start.db, count: c.dilations.count)
        let weights = w.map(copied), biases = b.map(copied)
        defer { (weights + biases).forEach { $0.deallocate() } }
        xl.withUnsafeBufferPointer { xp in
            sum.forward(weights: weights.map { UnsafePointer($0) }, biases: biases.map { UnsafePointer($0) }, input: xp.baseAddress!,
                        inputLayout: c.layout, batch: c.batch, height: c.height, width: c.width, output: &y, accumulate: accumulate)
            let gradients = dws.map(copied), biasGradients = dbs.map(copied)
            sum.backward(weights: weights.map { UnsafePointer($0) }, input: xp.baseAddress!, inputLayout: c.layout, outputGradient: dy,
                         batch: c.batch, height: c.height, width: c.width,
                         weightGradients: gradients.map { ($0, gradientLayout) }, biasGradients: biasGradients,
                         accumulateWeightGradient: accumulate, inputGradient: &dxl, accumulateInputGradient: accumulate)
            dws = gradients.enumerated().map { Array(UnsafeBufferPointer(start: $1, count: dws[$0].count)) }
            dbs = biasGradients.enumerated().map { Array(UnsafeBufferPointer(start: $1, count: dbs[$0].count)) }
            (gradients + biasGradients).forEach { $0.deallocate() }
        }
        return (Results(y: y, dx: relayout(dxl, c.layout, .plain), db: [], dw: dws.map(fromGradientLayout)), dbs)
    }

    /// A buffer holding `values`, for the kernel's pointer arguments (the caller frees it).
    private func copied(_ values: [Float]) -> UnsafeMutablePointer<Float> {
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: values.count)
        pointer.initialize(from: values, count: values.count)
        return pointer
    }

    private func assertClose(_ a: [Float], _ b: [Float], _ what: String, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, line: line)
        let scale = max(1, b.map { abs($0) }.max() ?? 0)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 2e-5 * scale, "\(what): worst difference \(worst)", line: line)
    }

    func testTapMatrixMatchesTheBranchesOnIm2col() {
        for c in Self.cases {
            let plane = c.height * c.width
            let x = random(c.batch * c.channels * plane)
            let w = c.dilations.map { _ in random(c.outputs * c.channels * 9) }
            let b = c.dilations.map { _ in random(c.outputs) }
            let dy = random(c.batch * c.outputs * plane)
            let gradientLayout: WeightGradientLayout = c.outputs % 16 == 0 ? .blocked16 : .plain
            for accumulate in [false, true] {
                let start = Results(y: random(c.batch * c.outputs * plane), dx: random(c.batch * c.channels * plane),
                                    db: random(c.outputs), dw: c.dilations.map { _ in random(c.outputs * c.channels * 9) })
                let expected = reference(c, x: x, w: w, b: b, dy: dy, start: start, accumulate: accumulate)
                let (got, biasGradients) = taps(c, x: x, w: w, b: b, dy: dy, start: start, accumulate: accumulate,
                                               gradientLayout: gradientLayout)
                let name = "\(c.dilations) at \(c.height)x\(c.width), \(c.layout), accumulate \(accumulate)"
                assertClose(got.y, expected.y, "output, \(name)")
                assertClose(got.dx, expected.dx, "input gradient, \(name)")
                for index in c.dilations.indices {
                    // Each branch's gradient on its own: the reference's are its branch's alone.
                    var own = start.dw[index]
                    let g = ConvolutionGeometry(inputChannels: c.channels, outputChannels: c.outputs, kernel: 3,
                                                padding: c.dilations[index], dilation: c.dilations[index])
                    var ownBias = start.db
                    var scratch = [Float](repeating: 0, count: 9 * c.channels * plane)
                    Convolution.backwardWeight(g, input: x, outputGradient: dy, batch: c.batch, height: c.height, width: c.width,
                                               weightGradient: &own, biasGradient: &ownBias, accumulate: accumulate,
                                               scratch: &scratch)
                    assertClose(got.dw[index], own, "weight gradient \(index), \(name)")
                    assertClose(biasGradients[index], ownBias, "bias gradient \(index), \(name)")
                }
            }
        }
    }

    func testTapsThatReachNoPixelAreLeftOut() {
        let sum = DilatedBranchSum(inputChannels: 16, outputChannels: 2, dilations: [6, 12, 18, 24])
        // 13 x 13: 6 and 12 keep all 9 taps, 18 and 24 the centre only.
        XCTAssertEqual(sum.tapRowCount(height: 13, width: 13), (9 + 9 + 1 + 1) * 2)
        // 41 x 41 (DeepLab's 321 crop): every tap reaches the map.
        XCTAssertEqual(sum.tapRowCount(height: 41, width: 41), 36 * 2)
        // 30 x 8: 6 keeps all 9 taps; 12, 18 and 24 the centre column only.
        XCTAssertEqual(sum.tapRowCount(height: 30, width: 8), (9 + 3 + 3 + 3) * 2)
    }
}
