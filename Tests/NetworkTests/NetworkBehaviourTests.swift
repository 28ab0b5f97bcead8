import Formats
import Kernels
import Network
import TestSupport
import XCTest

final class NetworkBehaviourTests: XCTestCase {
    /// The real network: parameter counts of the spec (section 1.10), a forward
    /// pass and one training step that lowers the loss.
    func testFullWidthModelBuildsRunsAndTrainsOneStep() throws {
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 1, round: 1, subcategoriesPerClass: 10))
        let runningStatistics = 47_744
        XCTAssertEqual(network.store.parameterCount, 105_972_032 + runningStatistics)
        XCTAssertEqual(network.store.trainableCount, 105_103_360)
        XCTAssertEqual(network.store.entries.count, 43 + 37 * 4 + 2)
        XCTAssertEqual(network.configuration.featureChannels, 4096)
        XCTAssertEqual(network.backboneMACs(height: 224, width: 224).total, 99_764_338_688, "spec 10.1")
        let round0 = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 1, round: 0))
        XCTAssertEqual(round0.store.parameterCount, 105_152_832 + runningStatistics)
        XCTAssertEqual(round0.store.trainableCount, 104_202_240 + 81_920)

        network.initializeBackbone(seed: 1)
        var generator = SeededGenerator(seed: 3)
        let input = (0..<(3 * 32 * 32)).map { _ in Float.random(in: -2...2, using: &generator) }
        let eval = input.withUnsafeBufferPointer { network.forward(input: $0.baseAddress!, batch: 1, height: 32, width: 32) }
        XCTAssertEqual(eval.features.count, 4096)
        XCTAssertEqual(eval.logits.map(\.count), [20, 200])
        XCTAssertEqual(network.mapSize.height, 4)
        XCTAssertTrue(eval.logits.joined().allSatisfy(\.isFinite))

        var labels20 = [Float](repeating: 0, count: 20), labels200 = [Float](repeating: 0, count: 200)
        labels20[14] = 1
        labels200[143] = 1
        let context = DropoutContext(random: CounterRandom(seed: 5), step: 0, firstSampleIndex: 0)
        func trainingLoss() -> Double {
            input.withUnsafeBufferPointer { _ = network.forward(input: $0.baseAddress!, batch: 1, height: 32, width: 32,
                                                               mode: .training(dropout: context, inputGradient: false)) }
            return network.backward(targets: [labels20, labels200]).total
        }
        let before = trainingLoss()
        XCTAssertTrue(before.isFinite)
        for name in ["b3.conv_branch2a.weight", "b7.conv_branch2b1.weight", "fc8_200.weight"] {
            let gradient = try XCTUnwrap(network.store.gradientView(name))
            XCTAssertTrue(gradient.contains { $0 != 0 }, "\(name) has an all-zero gradient")
            XCTAssertTrue(gradient.allSatisfy(\.isFinite), "\(name) has a non-finite gradient")
        }
        XCTAssertNil(network.store.gradientView("b2_2.conv_branch2a.weight"))
        // A plain gradient step on every trainable tensor, sized so that the
        // first-order prediction is a 1% decrease, lowers the same loss.
        let squaredNorm = network.store.gradients.reduce(0.0) { $0 + Double($1) * Double($1) }
        let learningRate = Float(0.01 * before / squaredNorm)
        for entry in network.store.entries where entry.isTrainable {
            let values = network.store.values.baseAddress! + entry.offset
            let gradient = network.store.plainGradient(entry.name)!
            for i in 0..<entry.count { values[i] -= learningRate * gradient[i] }
        }
        let after = trainingLoss()
        XCTAssertLessThan(after, before)
        XCTAssertGreaterThan(after, before * 0.97, "a 1% step cannot do much more than the linear prediction")
    }

    /// What data-parallel training relies on: two ranks holding one image each
    /// (sample indices 0 and 1, loss normalised by the global batch of 2)
    /// produce gradients that sum to those of one rank holding both, with
    /// dropout active.
    func testSplittingTheBatchSumsToTheSameGradients() throws {
        let directory = GoldenTests.directory
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: 1))
        try network.loadSafetensors("\(directory)/r38w16_round1.safetensors")
        let golden = try Safetensors.read("\(directory)/r38w16_round1_case.safetensors").tensors
        func tensor(_ name: String) throws -> [Float] { try XCTUnwrap(golden.first { $0.name == name }).floatValues() }
        let x = try tensor("x"), labels20 = try tensor("labels20"), labels200 = try tensor("labels200")
        let random = CounterRandom(seed: 77)
        let image = 3 * 48 * 64

        func step(images: Range<Int>) -> (loss: Double, gradients: [Float]) {
            let batch = images.count
            let context = DropoutContext(random: random, step: 3, firstSampleIndex: images.lowerBound)
            x.withUnsafeBufferPointer { all in
                _ = network.forward(input: all.baseAddress! + images.lowerBound * image, batch: batch, height: 48, width: 64,
                                    mode: .training(dropout: context, inputGradient: false))
            }
            let losses = network.backward(targets: [Array(labels20[(images.lowerBound * 20)..<(images.upperBound * 20)]),
                                                    Array(labels200[(images.lowerBound * 200)..<(images.upperBound * 200)])],
                                          normalizer: 2)
            return (losses.total, Array(network.store.gradients))
        }
        let whole = step(images: 0..<2)
        let first = step(images: 0..<1)
        let second = step(images: 1..<2)
        XCTAssertEqual(first.loss + second.loss, whole.loss, accuracy: 1e-6)
        let summed = zip(first.gradients, second.gradients).map { $0 + $1 }
        let scale = whole.gradients.map(abs).max()!
        let worst = zip(summed, whole.gradients).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst / scale, 1e-5, "split-batch gradients differ by \(worst / scale) relative")
        // Dropout was really on: without it the loss differs.
        x.withUnsafeBufferPointer { all in
            _ = network.forward(input: all.baseAddress!, batch: 2, height: 48, width: 64, mode: .training(dropout: nil, inputGradient: false))
        }
        XCTAssertNotEqual(network.backward(targets: [labels20, labels200]).total, whole.loss, accuracy: 1e-4)
    }

    func testWorkspaceIsReusedForTheSameShape() throws {
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: 0))
        network.initializeBackbone(seed: 2)
        let input = [Float](repeating: 0.5, count: 2 * 3 * 40 * 40)
        let mode = SCCAMNetwork.Mode.training(dropout: nil, inputGradient: false)
        input.withUnsafeBufferPointer { _ = network.forward(input: $0.baseAddress!, batch: 2, height: 40, width: 40, mode: mode) }
        let bytes = network.workspaceBytes
        XCTAssertGreaterThan(bytes, 0)
        let first = input.withUnsafeBufferPointer { network.forward(input: $0.baseAddress!, batch: 2, height: 40, width: 40, mode: mode) }
        XCTAssertEqual(network.workspaceBytes, bytes)
        // Inference shares activation buffers between blocks: it plans less memory.
        input.withUnsafeBufferPointer { _ = network.forward(input: $0.baseAddress!, batch: 2, height: 40, width: 40) }
        XCTAssertLessThan(network.workspaceBytes, bytes)
        let again = input.withUnsafeBufferPointer { network.forward(input: $0.baseAddress!, batch: 2, height: 40, width: 40, mode: mode) }
        XCTAssertEqual(first.logits, again.logits, "no state may leak between passes")
    }
}
