import Formats
import Foundation
import Kernels
import Network
import XCTest

/// AffinityNet at width 16 against `Golden/aff_w16*.safetensors` (copied from
/// shared/golden/refine): a batch of 2 at 112 x 112 in training mode, dropout
/// off, with psa's loss on given pair labels.
final class AffinityNetGoldenTests: XCTestCase, GoldenComparing {
    /// How the networks compute (ConvolutionPathGoldenTests runs these cases on every path).
    var compute = Compute()

    func makeAffinityNetwork() throws -> AffinityNetwork {
        let network = AffinityNetwork(widthDivisor: 16, compute: compute)
        let (tensors, _) = try Safetensors.read("\(Self.directory)/aff_w16.safetensors")
        try network.store.load(tensors, from: "aff_w16.safetensors")
        return network
    }

    func testWeightsFitTheModel() throws {
        let network = try makeAffinityNetwork()
        XCTAssertEqual(network.store.entries.count, 195)
        XCTAssertEqual(Array(network.store.entries.suffix(4).map(\.name)), ["f8_3.weight", "f8_4.weight", "f8_5.weight", "f9.weight"])
        XCTAssertEqual(network.embeddingChannels, 28)
    }

    func testForwardLossAndGradients() throws {
        let network = try makeAffinityNetwork()
        let golden = try tensors("aff_w16_case.safetensors")
        let x = try values(golden, "x")
        var activations: [String: [Float]] = [:]
        x.withUnsafeBufferPointer { input in
            _ = network.forward(input: input.baseAddress!, batch: 2, height: 112, width: 112,
                                mode: .training(dropout: nil, inputGradient: true)) { name, values in activations[name] = Array(values) }
        }
        XCTAssertEqual([network.pairs.height, network.pairs.width, network.pairs.pairsPerDisplacement], [14, 14, 60])
        for name in ["f8_3", "f8_4", "f8_5", "f9", "aff"] {
            assertClose(try XCTUnwrap(activations[name], name), try values(golden, name), tolerance: forwardTolerance, name)
        }
        let labels = AffinityLoss.Labels(batch: 2, pairsPerImage: network.pairs.pairCount,
                                         backgroundPositive: try values(golden, "bg_pos"),
                                         foregroundPositive: try values(golden, "fg_pos"), negative: try values(golden, "neg"))
        XCTAssertTrue(labels.counts.asArray.allSatisfy { $0 > 0 }, "every kind of pair occurs")
        let loss = network.backward(labels: labels)
        for (value, name) in [(loss.total, "loss"), (loss.background, "loss_bg"), (loss.foreground, "loss_fg"), (loss.negative, "loss_neg")] {
            let expected = Double(try values(golden, name)[0])
            XCTAssertEqual(value, expected, accuracy: lossTolerance * max(1, abs(expected)), name)
        }
        for name in ["f9", "f8_3", "f8_4", "f8_5", "b7.conv_branch2b2", "b6.conv_branch2a", "b5.conv_branch2a",
                     "b5.conv_branch1", "b4_5.conv_branch2a", "b3.conv_branch2a"] {
            let gradient = Array(try XCTUnwrap(network.store.gradientView("\(name).weight"), "\(name) must be trainable"))
            assertClose(gradient, try values(golden, "grad.\(name).weight"), tolerance: gradientTolerance, "grad.\(name)")
        }
        assertClose(Array(try XCTUnwrap(network.inputGradient)), try values(golden, "grad.x"), tolerance: gradientTolerance, "grad.x")
    }

    /// The collapse the demo hit at lr 0.1 with momentum 0.9: both positive parts at
    /// -log(1e-5) (every affinity 0), or the negative part there (every affinity 1).
    func testCollapseIsTheLossAtItsCeiling() {
        XCTAssertTrue(AffinityLoss.hasCollapsed(background: 11.5033, foreground: 11.4204, negative: 0))
        XCTAssertTrue(AffinityLoss.hasCollapsed(background: 0, foreground: 0, negative: 11.5116))
        XCTAssertFalse(AffinityLoss.hasCollapsed(background: 11.5, foreground: 0.3, negative: 0.2))
        XCTAssertFalse(AffinityLoss.hasCollapsed(background: 0.28, foreground: 0.26, negative: 0.11))
    }
}
