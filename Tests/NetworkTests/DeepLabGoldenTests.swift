import Formats
import Foundation
import Kernels
import Network
import XCTest

/// DeepLab-v2 (ResNet-101, ASPP, MSC) at width 16 against
/// `Golden/dlv2w16*.safetensors` (copied from shared/golden/deeplab, made
/// with kazuto1011/deeplab-pytorch's own model code): a batch of 2 at 97 x 97.
final class DeepLabGoldenTests: XCTestCase, GoldenComparing {
    /// How the networks compute (ConvolutionPathGoldenTests runs these cases on every path).
    var compute = Compute()

    func makeNetwork(inputResize: BilinearResize.Rule = .sizeRatio) throws -> DeepLabV2 {
        let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: 16, inputResize: inputResize), compute: compute)
        let (tensors, _) = try Safetensors.read("\(Self.directory)/dlv2w16.safetensors")
        try network.store.load(tensors, from: "dlv2w16.safetensors")
        return network
    }

    func testStateDictIsTheReferences() throws {
        let network = try makeNetwork()
        let (tensors, _) = try Safetensors.read("\(Self.directory)/dlv2w16.safetensors")
        // 632 keys less the 104 num_batches_tracked scalars.
        XCTAssertEqual(network.store.entries.count, 528)
        XCTAssertEqual(Set(network.store.entries.map(\.name)), Set(tensors.map(\.name)))
        for tensor in tensors { XCTAssertEqual(network.store.entry(named: tensor.name)?.shape, tensor.shape, tensor.name) }
        // Registration order (deeplab-v2.md 2.1): layer1 to layer5, then the ASPP; within a
        // block reduce, conv3x3, increase, shortcut; within a unit conv then bn.
        let names = network.store.entries.map(\.name)
        XCTAssertEqual(Array(names.prefix(7)), ["base.layer1.conv1.conv.weight", "base.layer1.conv1.bn.weight", "base.layer1.conv1.bn.bias",
                                                "base.layer1.conv1.bn.running_mean", "base.layer1.conv1.bn.running_var",
                                                "base.layer2.block1.reduce.conv.weight", "base.layer2.block1.reduce.bn.weight"])
        XCTAssertEqual(Array(names.suffix(8)), (0..<4).flatMap { ["base.aspp.c\($0).weight", "base.aspp.c\($0).bias"] })
        let shortcut = try XCTUnwrap(names.firstIndex(of: "base.layer3.block1.shortcut.conv.weight"))
        XCTAssertEqual(names[shortcut - 5], "base.layer3.block1.increase.conv.weight")
        XCTAssertEqual(names.filter { $0.hasSuffix(".conv.weight") }.count, 104)
        // Every convolution and the ASPP train; BatchNorm is frozen.
        XCTAssertEqual(network.store.entries.filter(\.isTrainable).count, 112)
        XCTAssertEqual(network.asppBiasNames, (0..<4).map { "base.aspp.c\($0).bias" })
    }

    func testSizesFollowTheReferenceRule() {
        let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: 32), compute: compute)
        for (n, expected) in [(321, 41), (513, 65), (160, 21), (240, 31), (375, 48), (500, 63), (281, 36), (97, 13), (48, 7), (72, 10)] {
            XCTAssertEqual(network.outputSize(height: n, width: n).height, expected, "\(n)")
            XCTAssertEqual(expected, (n + 1) / 8 + 1)
        }
    }

    /// deeplab-v2.md 1.6, 1.7 and 6: parameter count and the cost model.
    func testFullWidthSizeAndCost() {
        let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: 1))
        XCTAssertEqual(network.store.parameterCount, 44_048_532 + 105_344)
        XCTAssertEqual(network.store.trainableCount, 43_943_188)
        XCTAssertEqual(network.macs(height: 321, width: 321), 137_778_504_896)
        XCTAssertEqual(network.trainingMACs(height: 321, width: 321), 412_895_963_520)
        XCTAssertEqual(network.macs(height: 513, width: 513), 344_875_910_336)
        XCTAssertEqual(network.macs(height: 375, width: 500), 246_770_626_432)
    }

    func testEvalLogitsBothResizeRules() throws {
        let golden = try tensors("dlv2w16_case.safetensors")
        let x = try values(golden, "x")
        for (rule, name) in [(BilinearResize.Rule.sizeRatio, "logits_eval"), (.inverseFactor, "logits_eval_torch16")] {
            let network = try makeNetwork(inputResize: rule)
            let fused = x.withUnsafeBufferPointer { network.predict(input: $0.baseAddress!, batch: 2, height: 97, width: 97) }
            assertClose(fused, try values(golden, name), tolerance: forwardTolerance, name)
        }
    }

    func testTrainingOutputsLossesAndGradients() throws {
        let network = try makeNetwork()
        let golden = try tensors("dlv2w16_case.safetensors")
        let x = try values(golden, "x")
        let outputs = x.withUnsafeBufferPointer { network.trainingOutputs(input: $0.baseAddress!, batch: 2, height: 97, width: 97) }
        XCTAssertEqual(outputs.map(\.name), ["s1", "s0.5", "s0.75", "max"])
        XCTAssertEqual(outputs.map(\.height), [13, 7, 10, 13])
        assertClose(outputs[0].values, try values(golden, "logits_base"), tolerance: forwardTolerance, "logits_base")
        for output in outputs {
            assertClose(output.values, try values(golden, "logits_train_\(output.name)"), tolerance: forwardTolerance, output.name)
        }
        // The labels at each output's size, by Pillow's nearest rule.
        let labels = try values(golden, "labels").map { Int32($0) }
        for (name, size) in [("s1", 13), ("s0.5", 7), ("s0.75", 10), ("max", 13)] {
            var resized = [Int32](repeating: 0, count: 2 * size * size)
            NearestResize.resize(labels, planes: 2, height: 97, width: 97, output: &resized, newHeight: size, newWidth: size)
            XCTAssertEqual(resized, try values(golden, "labels_\(name)").map { Int32($0) }, "labels_\(name)")
        }
        var inputGradient = [Float](repeating: .nan, count: x.count)
        let loss = try x.withUnsafeBufferPointer { input in
            try labels.withUnsafeBufferPointer { labels in
                try network.trainingStep(input: input.baseAddress!, labels: labels.baseAddress!, batch: 2, height: 97, width: 97,
                                     inputGradient: &inputGradient)
            }
        }
        for (value, name) in zip(loss.terms + [loss.total], ["loss_s1", "loss_s0.5", "loss_s0.75", "loss_max", "loss"]) {
            let expected = Double(try values(golden, name)[0])
            XCTAssertEqual(value, expected, accuracy: lossTolerance * max(1, abs(expected)), name)
        }
        for name in ["aspp.c0.weight", "aspp.c3.bias", "layer5.block3.increase.conv.weight", "layer5.block1.shortcut.conv.weight",
                     "layer4.block23.conv3x3.conv.weight", "layer3.block1.reduce.conv.weight", "layer2.block1.reduce.conv.weight",
                     "layer1.conv1.conv.weight"] {
            let gradient = try XCTUnwrap(network.store.plainGradient("base.\(name)"), "\(name) must be trainable")
            assertClose(gradient, try values(golden, "grad.base.\(name)"), tolerance: gradientTolerance, "grad.\(name)")
        }
        assertClose(inputGradient, try values(golden, "grad.x"), tolerance: gradientTolerance, "grad.x")
    }
}
