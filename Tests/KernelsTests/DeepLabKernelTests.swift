import Kernels
import XCTest

/// The kernels DeepLab-v2 adds: ceil-mode max-pool, the bilinear transpose,
/// Pillow's nearest label resize and the ignoring cross-entropy.
final class DeepLabKernelTests: XCTestCase {
    func testCeilModePoolSizes() {
        let pool = MaxPoolGeometry(kernel: 3, stride: 2, padding: 1)
        // floor(n / 2) + 1 for the stem's outputs (deeplab-v2.md 1.3): 160 -> 81, not floor mode's 80.
        for n in 2...400 { XCTAssertEqual(pool.outputExtent(n), n / 2 + 1, "\(n)") }
    }

    func testPoolRoutesTheGradientToTheFirstMaximum() {
        let pool = MaxPoolGeometry(kernel: 3, stride: 2, padding: 1)
        let input: [Float] = [1, 5, 5, 2,
                              0, 3, 4, 9,
                              7, 7, 1, 1]
        var output = [Float](repeating: 0, count: 2 * 3), winners = [Int32](repeating: 0, count: 6)
        MaxPool.forward(pool, input: input, planes: 1, height: 3, width: 4, output: &output, winners: &winners)
        // Windows start at -1 (padding): the 7, 7 tie of the lower-left window goes to the first.
        XCTAssertEqual(output, [5, 9, 9, 7, 9, 9])
        XCTAssertEqual(winners, [1, 7, 7, 8, 7, 7])
        var gradient = [Float](repeating: 0, count: 12)
        MaxPool.backward(pool, outputGradient: [1, 2, 3, 4, 5, 6], winners: winners, planes: 1, height: 3, width: 4,
                         inputGradient: &gradient)
        XCTAssertEqual(gradient, [0, 1, 0, 0, 0, 0, 0, 16, 4, 0, 0, 0])
    }

    /// <resize(x), y> = <x, resizeᵀ(y)> for both coordinate rules.
    func testBilinearTransposeIsTheAdjoint() {
        for (h, w, nh, nw, factor) in [(97, 97, 48, 48, 0.5), (97, 90, 72, 67, 0.75), (7, 7, 13, 13, 0.0), (10, 6, 13, 13, 0.0)] {
            for rule in BilinearResize.Rule.allCases {
                let scale = factor > 0 ? BilinearResize.scale(factor: factor, rule: rule) : nil
                let x = (0..<(2 * h * w)).map { Float(sin(Double($0) * 0.37)) }
                let y = (0..<(2 * nh * nw)).map { Float(cos(Double($0) * 0.11)) }
                var rx = [Float](repeating: 0, count: y.count), ty = [Float](repeating: 0, count: x.count)
                BilinearResize.resize(x, planes: 2, height: h, width: w, output: &rx, newHeight: nh, newWidth: nw, scale: scale)
                BilinearResize.resizeTranspose(y, planes: 2, height: h, width: w, newHeight: nh, newWidth: nw, inputGradient: &ty, scale: scale)
                let left = zip(rx, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let right = zip(x, ty).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                XCTAssertEqual(left, right, accuracy: 1e-4 * max(1, abs(left)), "\(h)x\(w) -> \(nh)x\(nw) \(rule)")
            }
        }
    }

    /// Pillow's maps for 321-pixel crops (deeplab-v2.md appendix A.1).
    func testNearestLabelMapsArePillows() {
        XCTAssertEqual(NearestResize.sourceIndices(input: 321, output: 21),
                       [7, 22, 38, 53, 68, 84, 99, 114, 129, 145, 160, 175, 191, 206, 221, 236, 252, 267, 282, 298, 313])
        XCTAssertEqual(NearestResize.sourceIndices(input: 321, output: 31),
                       [5, 15, 25, 36, 46, 56, 67, 77, 88, 98, 108, 119, 129, 139, 150, 160, 170, 181, 191, 201, 212, 222, 232,
                        243, 253, 264, 274, 284, 295, 305, 315])
        XCTAssertEqual(Array(NearestResize.sourceIndices(input: 321, output: 41).prefix(8)), [3, 11, 19, 27, 35, 43, 50, 58])
        XCTAssertEqual(NearestResize.sourceIndices(input: 5, output: 5), [0, 1, 2, 3, 4])
    }

    func testCrossEntropyIgnoresAndMatchesFiniteDifferences() {
        let classes = 3, plane = 4
        var logits: [Float] = [0.2, -1, 2, 0.5, 1.5, 0.3, -0.7, 0.1, -0.4, 0.9, 0.0, 2.2]
        let labels: [Int32] = [2, 255, 0, 1]
        var gradient = [Float](repeating: 9, count: logits.count)
        let loss = SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, batch: 1, classes: classes, plane: plane,
                                                normalizer: 3, weight: 0.5, gradient: &gradient)
        XCTAssertEqual(SoftmaxCrossEntropy.labelledCount(labels, count: 4), 3)
        for c in 0..<classes { XCTAssertEqual(gradient[c * plane + 1], 0, "the ignored pixel has no gradient") }
        for i in logits.indices where i % plane != 1 {
            let saved = logits[i]
            logits[i] = saved + 1e-3
            let up = SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, batch: 1, classes: classes, plane: plane, normalizer: 3)
            logits[i] = saved - 1e-3
            let down = SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, batch: 1, classes: classes, plane: plane, normalizer: 3)
            logits[i] = saved
            XCTAssertEqual(Double(gradient[i]), 0.5 * (up - down) / 2e-3, accuracy: 1e-4, "logit \(i)")
        }
        XCTAssertGreaterThan(loss, 0)
    }
}
