import Kernels
import TestSupport
import XCTest

/// The fused residual sum of a ResNet-101 bottleneck unit gives, bit for
/// bit, what its three separate passes give (BatchNorm, add, ReLU; and
/// backward the ReLU's mask and the BatchNorm's scale), in both layouts,
/// with planes that leave a partial vector, in place, and on the channel
/// counts off the 16-blocks that take the plain loop.
final class ResidualSumTests: XCTestCase {
    private var generator = SeededGenerator(seed: 3131)

    private func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &generator) } }

    /// (batch, channels, plane, layout)
    static let cases: [(Int, Int, Int, ActivationLayout)] = [(2, 32, 13, .plain), (2, 32, 13, .blocked16), (1, 48, 40, .blocked16),
                                                            (2, 32, 13, .blocked8), (1, 48, 40, .blocked8),
                                                            (3, 16, 1, .plain), (2, 6, 9, .plain)]

    private func channel(_ index: Int, channels: Int, plane: Int, layout: ActivationLayout) -> Int {
        switch layout {
        case .plain: return index / plane % channels
        case .blocked16: return (index / (16 * plane) * 16) % channels + index % 16
        case .blocked8: return (index / (8 * plane) * 8) % channels + index % 8
        }
    }

    func testForwardIsTheThreePasses() {
        for (batch, channels, plane, layout) in Self.cases {
            let count = batch * channels * plane
            let x = random(count), r = random(count), scale = random(channels), shift = random(channels)
            var expected = [Float](repeating: 0, count: count)
            for i in 0..<count {
                let c = channel(i, channels: channels, plane: plane, layout: layout)
                let normalised = x[i] * scale[c] + shift[c]
                expected[i] = max(0, normalised + r[i])
            }
            var y = [Float](repeating: .nan, count: count)
            FrozenBatchNorm.forwardAddingResidual(input: x, residual: r, output: &y, scale: scale, shift: shift, batch: batch,
                                                  channels: channels, plane: plane, layout: layout)
            XCTAssertEqual(y, expected, "\(channels) channels x \(plane), \(layout)")
            XCTAssertTrue(y.contains(0) && y.contains { $0 > 0 }, "the case must exercise both sides of the ReLU")
            // In place, over the residual.
            var inPlace = r
            inPlace.withUnsafeMutableBufferPointer { p in
                FrozenBatchNorm.forwardAddingResidual(input: x, residual: p.baseAddress!, output: p.baseAddress!, scale: scale,
                                                      shift: shift, batch: batch, channels: channels, plane: plane, layout: layout)
            }
            XCTAssertEqual(inPlace, expected, "in place, \(channels) channels x \(plane), \(layout)")
        }
    }

    func testBackwardIsTheMaskAndTheScale() {
        for (batch, channels, plane, layout) in Self.cases {
            let count = batch * channels * plane
            let y = random(count).map { max(0, $0) }, dy = random(count), scale = random(channels)
            let expectedSum = (0..<count).map { y[$0] > 0 ? dy[$0] : 0 }
            let expectedNorm = (0..<count).map { expectedSum[$0] * scale[channel($0, channels: channels, plane: plane, layout: layout)] }
            var sum = [Float](repeating: .nan, count: count), norm = [Float](repeating: .nan, count: count)
            FrozenBatchNorm.backwardThroughResidual(output: y, outputGradient: dy, sumGradient: &sum, normGradient: &norm,
                                                    scale: scale, batch: batch, channels: channels, plane: plane, layout: layout)
            XCTAssertEqual(sum, expectedSum, "sum gradient, \(channels) channels x \(plane), \(layout)")
            XCTAssertEqual(norm, expectedNorm, "BatchNorm gradient, \(channels) channels x \(plane), \(layout)")
            // The sum's gradient over dy itself (the identity shortcut's dx is dy's buffer).
            var inPlace = dy
            inPlace.withUnsafeMutableBufferPointer { p in
                FrozenBatchNorm.backwardThroughResidual(output: y, outputGradient: p.baseAddress!, sumGradient: p.baseAddress!,
                                                        normGradient: &norm, scale: scale, batch: batch, channels: channels,
                                                        plane: plane, layout: layout)
            }
            XCTAssertEqual(inPlace, expectedSum, "in place, \(channels) channels x \(plane), \(layout)")
        }
    }
}
