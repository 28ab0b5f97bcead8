import Formats
import Foundation
import Kernels
import Network
import XCTest

/// The golden cases of shared/golden (copied under Golden/): a width-16
/// ResNet-38 with SC-CAM heads, evaluated in float64 by an independent
/// implementation. Tolerances are relative to each tensor's largest magnitude.
final class GoldenTests: XCTestCase, GoldenComparing {
    /// How the networks compute (ConvolutionPathGoldenTests runs these cases on every path).
    var compute = Compute()

    func makeNetwork(round: Int, weights: String) throws -> SCCAMNetwork {
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: round, subcategoriesPerClass: 10), compute: compute)
        try network.loadSafetensors("\(Self.directory)/\(weights)")
        return network
    }

    func testWeightFilesMatchTheModelExactly() throws {
        let round1 = try makeNetwork(round: 1, weights: "r38w16_round1.safetensors")
        XCTAssertEqual(round1.store.entries.count, 193)
        XCTAssertEqual(round1.store.parameterCount, 472_636)
        let round0 = try makeNetwork(round: 0, weights: "r38w16_round0.safetensors")
        XCTAssertEqual(round0.store.entries.count, 192)
        XCTAssertEqual(round0.store.parameterCount, 421_436)
        // Our tensors are the file's, bit for bit (the file orders them by name;
        // we keep the reference's state-dict order).
        let file = try tensors("r38w16_round1.safetensors")
        let ours = round1.store.tensors()
        XCTAssertEqual(Set(ours.map(\.name)), Set(file.keys))
        XCTAssertEqual(Array(ours.map(\.name).prefix(3)), ["conv1a.weight", "b2.bn_branch2a.weight", "b2.bn_branch2a.bias"])
        XCTAssertEqual(ours.last?.name, "fc8_200.weight")
        let differing = ours.filter { $0.payload != file[$0.name]?.payload }.map(\.name)
        XCTAssertEqual(differing, [], "tensors whose bytes differ from the file")

        // Saving and loading again gives the same bytes.
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("sccam-save-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try round1.saveSafetensors(temporary)
        let copy = SCCAMNetwork(configuration: round1.configuration, compute: compute)
        try copy.loadSafetensors(temporary)
        XCTAssertTrue(copy.store.values.elementsEqual(round1.store.values), "save/load round trip must be exact")
    }

    /// Both heads' logits, the pooled feature and both heads' CAMs of a round-1 forward.
    func assertRound1OutputsMatch(_ output: SCCAMNetwork.Output, network: SCCAMNetwork, golden: [String: SafetensorsTensor],
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        assertClose(output.logits[0], try values(golden, "logits20"), tolerance: forwardTolerance, "logits20", file: file, line: line)
        assertClose(output.logits[1], try values(golden, "logits200"), tolerance: forwardTolerance, "logits200", file: file, line: line)
        assertClose(output.features, try values(golden, "feature"), tolerance: forwardTolerance, "feature", file: file, line: line)
        assertClose(network.classActivationMaps(head: 0), try values(golden, "cam20"), tolerance: forwardTolerance, "cam20", file: file, line: line)
        assertClose(network.classActivationMaps(head: 1), try values(golden, "cam200"), tolerance: forwardTolerance, "cam200", file: file, line: line)
    }

    func testRound1ForwardActivationsAndCAMs() throws {
        let network = try makeNetwork(round: 1, weights: "r38w16_round1.safetensors")
        let golden = try tensors("r38w16_round1_case.safetensors")
        let x = try values(golden, "x")
        var activations: [String: [Float]] = [:]
        let output = x.withUnsafeBufferPointer { input in
            network.forward(input: input.baseAddress!, batch: 2, height: 48, width: 64) { name, values in
                // The golden activations are of batch item 0 only.
                activations[name] = Array(values.prefix(values.count / 2))
            }
        }
        for name in ["conv1a", "b2", "b3", "b4", "b5", "b6", "b7", "conv6"] {
            assertClose(try XCTUnwrap(activations[name]), try values(golden, "act.\(name)"),
                        tolerance: forwardTolerance, "act.\(name)")
        }
        XCTAssertEqual(network.mapSize.height, 6)
        XCTAssertEqual(network.mapSize.width, 8)
        try assertRound1OutputsMatch(output, network: network, golden: golden)
    }

    func testRound1LossAndGradients() throws {
        let network = try makeNetwork(round: 1, weights: "r38w16_round1.safetensors")
        let golden = try tensors("r38w16_round1_case.safetensors")
        let x = try values(golden, "x")
        x.withUnsafeBufferPointer { input in
            _ = network.forward(input: input.baseAddress!, batch: 2, height: 48, width: 64,
                                mode: .training(dropout: nil, inputGradient: true))
        }
        let losses = network.backward(targets: [try values(golden, "labels20"), try values(golden, "labels200")])
        XCTAssertEqual(losses.total, Double(try values(golden, "loss")[0]), accuracy: lossTolerance)
        XCTAssertEqual(losses.parent, Double(try values(golden, "loss20")[0]), accuracy: lossTolerance)
        XCTAssertEqual(try XCTUnwrap(losses.subcategory), Double(try values(golden, "loss200")[0]), accuracy: lossTolerance)
        for name in ["fc8_20.weight", "fc8_200.weight", "b7.conv_branch2b2.weight", "b4_5.conv_branch2a.weight",
                     "b3.conv_branch2a.weight"] {
            let gradient = try XCTUnwrap(network.store.plainGradient(name), "\(name) must be trainable")
            assertClose(gradient, try values(golden, "grad.\(name)"), tolerance: gradientTolerance, "grad.\(name)")
        }
        assertClose(Array(try XCTUnwrap(network.inputGradient)), try values(golden, "grad.x"),
                    tolerance: gradientTolerance, "grad.x")
        // The frozen stem has no gradient at all.
        for name in ["conv1a.weight", "b2.conv_branch2a.weight", "b2_2.conv_branch2b1.weight", "b3.bn_branch2a.weight", "bn7.bias"] {
            XCTAssertNil(network.store.gradientView(name), "\(name) must be frozen")
        }
    }

    func testTrainingWithoutInputGradientGivesTheSameWeightGradients() throws {
        let network = try makeNetwork(round: 1, weights: "r38w16_round1.safetensors")
        let golden = try tensors("r38w16_round1_case.safetensors")
        let x = try values(golden, "x")
        x.withUnsafeBufferPointer { input in
            _ = network.forward(input: input.baseAddress!, batch: 2, height: 48, width: 64,
                                mode: .training(dropout: nil, inputGradient: false))
        }
        var ready: [Range<Int>] = []
        network.backward(targets: [try values(golden, "labels20"), try values(golden, "labels200")]) { ready.append($0) }
        XCTAssertNil(network.inputGradient)
        assertClose(network.store.plainGradient("b3.conv_branch2a.weight")!, try values(golden, "grad.b3.conv_branch2a.weight"),
                    tolerance: gradientTolerance, "grad.b3.conv_branch2a.weight")
        // Gradients become final from the end of the buffer backwards, down to all of it.
        XCTAssertEqual(ready.last, 0..<network.store.trainableCount)
        XCTAssertEqual(ready.map(\.upperBound), [Int](repeating: network.store.trainableCount, count: ready.count))
        XCTAssertEqual(ready.map(\.lowerBound), ready.map(\.lowerBound).sorted(by: >))
        XCTAssertEqual(ready.count, 1 + 14, "heads, then b7 ... b3")
    }

    func testOddSizesForward() throws {
        let network = try makeNetwork(round: 1, weights: "r38w16_round1.safetensors")
        let golden = try tensors("r38w16_round1_case_odd.safetensors")
        let x = try values(golden, "x")
        let output = x.withUnsafeBufferPointer { network.forward(input: $0.baseAddress!, batch: 1, height: 37, width: 50) }
        XCTAssertEqual(network.mapSize.height, 5)
        XCTAssertEqual(network.mapSize.width, 7)
        try assertRound1OutputsMatch(output, network: network, golden: golden)
    }

    func testRound0ForwardLossAndGradients() throws {
        let network = try makeNetwork(round: 0, weights: "r38w16_round0.safetensors")
        let golden = try tensors("r38w16_round0_case.safetensors")
        let x = try values(golden, "x")
        let output = x.withUnsafeBufferPointer { network.forward(input: $0.baseAddress!, batch: 2, height: 48, width: 64) }
        assertClose(output.logits[0], try values(golden, "logits20"), tolerance: forwardTolerance, "logits20")
        assertClose(output.features, try values(golden, "feature"), tolerance: forwardTolerance, "feature")
        assertClose(network.classActivationMaps(head: 0), try values(golden, "cam20"), tolerance: forwardTolerance, "cam20")

        x.withUnsafeBufferPointer { input in
            _ = network.forward(input: input.baseAddress!, batch: 2, height: 48, width: 64,
                                mode: .training(dropout: nil, inputGradient: true))
        }
        let losses = network.backward(targets: [try values(golden, "labels20")])
        XCTAssertEqual(losses.total, Double(try values(golden, "loss")[0]), accuracy: lossTolerance)
        XCTAssertNil(losses.subcategory)
        for name in ["fc8.weight", "b7.conv_branch2b2.weight", "b4_5.conv_branch2a.weight", "b3.conv_branch2a.weight"] {
            assertClose(network.store.plainGradient(name)!, try values(golden, "grad.\(name)"),
                        tolerance: gradientTolerance, "grad.\(name)")
        }
        assertClose(Array(network.inputGradient!), try values(golden, "grad.x"), tolerance: gradientTolerance, "grad.x")
    }

    func testWrongCheckpointIsRejectedWithEveryProblemListed() throws {
        // Round-0 weights into a round-1 model: fc8 is unexpected, both SC-CAM heads are missing.
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: 1))
        XCTAssertThrowsError(try network.loadSafetensors("\(Self.directory)/r38w16_round0.safetensors")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("r38w16_round0.safetensors"), text)
            XCTAssertTrue(text.contains("unexpected tensor fc8.weight"), text)
            XCTAssertTrue(text.contains("missing tensor fc8_20.weight"), text)
            XCTAssertTrue(text.contains("missing tensor fc8_200.weight"), text)
        }
        // The wrong width: every conv and BN has the wrong shape.
        let wide = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 8, round: 1))
        XCTAssertThrowsError(try wide.loadSafetensors("\(Self.directory)/r38w16_round1.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("conv1a.weight has shape [4, 3, 3, 3], the model needs [8, 3, 3, 3]"), "\(error)")
        }
        // Heads may be missing where the reference loads non-strictly; they keep their init.
        let report = try network.store.load(
            try Safetensors.read("\(Self.directory)/r38w16_round1.safetensors").tensors.filter { !$0.name.hasPrefix("fc8") },
            from: "backbone-only", allowMissing: { $0.hasPrefix("fc8_") })
        XCTAssertEqual(report.keptAtInitialization, ["fc8_20.weight", "fc8_200.weight"])
    }
}
