import Kernels
import TestSupport
import XCTest

/// Within one pass's epoch a weight is converted once: a second call reads the
/// copy (the contract is that weights do not change within a pass), and a new
/// epoch converts again, so every step sees the weights the optimiser wrote.
final class ConvertedWeightsTests: XCTestCase {
    func testWeightsAreConvertedOncePerEpochAndAgainInTheNext() {
        var generator = SeededGenerator(seed: 77)
        let g = ConvolutionGeometry(inputChannels: 32, outputChannels: 32, kernel: 3, padding: 1)
        let (batch, height, width) = (1, 6, 7)
        let x = (0..<(batch * 32 * height * width)).map { _ in Float.random(in: -1...1, using: &generator) }
        let weights = UnsafeMutableBufferPointer<Float>.allocate(capacity: g.weightCount)
        defer { weights.deallocate() }
        for i in weights.indices { weights[i] = Float.random(in: -1...1, using: &generator) }
        let everyCall = OneDNNConvolutionEngine(algorithm: .direct)
        func forward(_ engine: any ConvolutionEngine) -> [Float] {
            var y = [Float](repeating: 0, count: x.count)
            engine.forward(g, weight: weights.baseAddress!, bias: nil, input: x, batch: batch, height: height, width: width,
                           output: &y, accumulate: false, scratch: ConvolutionScratch.none)
            return y
        }
        let pass = everyCall.reusingConvertedWeights(epoch: ConvertedWeights.nextEpoch())
        let before = forward(pass)
        XCTAssertEqual(before, forward(everyCall))
        // Changed in place within the epoch: the kernels still read the copy made before.
        for i in weights.indices { weights[i] *= 2 }
        XCTAssertEqual(forward(pass), before, "the epoch's copy is reused")
        let next = forward(everyCall.reusingConvertedWeights(epoch: ConvertedWeights.nextEpoch()))
        XCTAssertEqual(next, forward(everyCall), "a new epoch converts the weights as they are now")
        XCTAssertNotEqual(next, before)
    }

    /// A copy that an epoch reads only once is dropped when the next epoch
    /// starts, and that weight is converted into the shared buffers from then
    /// on, with the same results.
    func testCopiesReadOnceAreDropped() {
        let g = ConvolutionGeometry(inputChannels: 16, outputChannels: 48, kernel: 3, padding: 1)
        let weights = UnsafeMutableBufferPointer<Float>.allocate(capacity: g.weightCount)
        defer { weights.deallocate() }
        for i in weights.indices { weights[i] = Float(i % 7) - 3 }
        let x = (0..<(16 * 5 * 5)).map { Float($0 % 5) - 2 }
        let everyCall = OneDNNConvolutionEngine(algorithm: .direct)
        func forward(_ engine: any ConvolutionEngine) -> [Float] {
            var y = [Float](repeating: 0, count: 48 * 25)
            engine.forward(g, weight: weights.baseAddress!, bias: nil, input: x, batch: 1, height: 5, width: 5, output: &y,
                           accumulate: false, scratch: ConvolutionScratch.none)
            return y
        }
        let expected = forward(everyCall)
        XCTAssertEqual(forward(everyCall.reusingConvertedWeights(epoch: ConvertedWeights.nextEpoch())), expected)
        let copyBytes = g.weightCount * 4, held = ConvertedWeights.heldBytes
        XCTAssertGreaterThanOrEqual(held, copyBytes, "the first epoch keeps a copy")
        XCTAssertEqual(forward(everyCall.reusingConvertedWeights(epoch: ConvertedWeights.nextEpoch())), expected)
        XCTAssertLessThanOrEqual(ConvertedWeights.heldBytes, held - copyBytes, "read once: dropped when the next epoch starts")
        for i in weights.indices { weights[i] += 1 }
        XCTAssertEqual(forward(everyCall.reusingConvertedWeights(epoch: ConvertedWeights.nextEpoch())), forward(everyCall))
    }
}
