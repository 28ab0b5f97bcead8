import Formats
import Foundation
import Kernels
import Network
import XCTest

/// DeepLab's weight formats: the native `.caffemodel` reader (on
/// `Golden/dlv2w16.caffemodel`, written by `Golden/make_caffemodel.py` from the
/// golden weights in Caffe's naming), convert.py's key mapping, the COCO
/// initialisation's layout and torchvision's names.
final class DeepLabWeightTests: XCTestCase, GoldenComparing {
    var compute = Compute()

    func golden() throws -> DeepLabV2 {
        let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: 16))
        try network.store.load(try Safetensors.read("\(Self.directory)/dlv2w16.safetensors").tensors, from: "dlv2w16.safetensors")
        return network
    }

    func testCaffeModelGivesTheSameNetwork() throws {
        let expected = try golden()
        let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: 16))
        let (source, report) = try network.loadWeights("\(Self.directory)/dlv2w16.caffemodel")
        XCTAssertEqual(source, .caffe)
        XCTAssertEqual(report.keptAtInitialization, [])
        for entry in expected.store.entries {
            let a = Array(try XCTUnwrap(network.store.view(entry.name))), b = Array(try XCTUnwrap(expected.store.view(entry.name)))
            // Running statistics went through x999 in float32 and back in double: a few ulp.
            let tolerance: Float = entry.name.contains("running_") ? 1e-6 : 0
            XCTAssertLessThanOrEqual(relativeError(a, b), tolerance, entry.name)
        }
    }

    func testCaffeModelRefusesTruncatedAndMalformedFiles() throws {
        let bytes = try AtomicFile.read("\(Self.directory)/dlv2w16.caffemodel")
        let folder = NSTemporaryDirectory() + "sccam-caffe-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let truncated = "\(folder)/truncated.caffemodel"
        try Data(bytes.prefix(bytes.count / 2)).write(to: URL(fileURLWithPath: truncated))
        let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: 16))
        XCTAssertThrowsError(try network.loadWeights(truncated)) { error in
            XCTAssertTrue("\(error)".contains("truncated") && "\(error)".contains(truncated), "\(error)")
        }
        var malformed = bytes
        malformed[0] = 0xA7  // field 20, wire type 7: no such wire type
        let bad = "\(folder)/malformed.caffemodel"
        try Data(malformed).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try network.loadWeights(bad)) { XCTAssertTrue("\($0)".contains("wire type"), "\($0)") }
        let empty = "\(folder)/empty.caffemodel"
        try Data([0x08, 0x01]).write(to: URL(fileURLWithPath: empty))
        XCTAssertThrowsError(try network.loadWeights(empty)) { XCTAssertTrue("\($0)".contains("no Caffe layers"), "\($0)") }
        // A width-8 network cannot take width-16 blobs: every problem is named.
        let wider = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: 8))
        XCTAssertThrowsError(try wider.loadWeights("\(Self.directory)/dlv2w16.caffemodel")) {
            XCTAssertTrue("\($0)".contains("layer1.conv1.conv.weight: 588 values, the model needs 1176"), "\($0)")
        }
    }

    /// convert.py's translate_layer_name (deeplab-v2.md 2.4), name by name.
    func testCaffeKeyMappingIsConvertPys() throws {
        let cases = [("res4b22_branch2c", "layer4.block23.increase.conv"), ("bn3b3_branch2c", "layer3.block4.increase.bn"),
                     ("res5a_branch1", "layer5.block1.shortcut.conv"), ("conv1", "layer1.conv1.conv"), ("bn_conv1", "layer1.conv1.bn"),
                     ("scale_conv1", "layer1.conv1.bn"), ("pool1", "layer1.pool"), ("fc1_voc12_c0", "aspp.c0"), ("fc1_voc12_c3", "aspp.c3"),
                     ("fc1", "fc"), ("res2a_branch2a", "layer2.block1.reduce.conv"), ("res2c_branch2b", "layer2.block3.conv3x3.conv"),
                     ("bn3a_branch1", "layer3.block1.shortcut.bn"), ("res3b1_branch2a", "layer3.block2.reduce.conv"),
                     ("bn4b1_branch2b", "layer4.block2.conv3x3.bn")]
        for (caffe, key) in cases { XCTAssertEqual(DeepLabV2.caffeKeyPrefix(caffe), key, caffe) }
        XCTAssertNil(DeepLabV2.caffeKeyPrefix("data"))
        // Every unit of the network has its Caffe name.
        let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: 32))
        let convs = network.store.entries.map(\.name).filter { $0.hasSuffix(".conv.weight") && !$0.contains("layer1") }
        XCTAssertEqual(convs.count, 103)
        for name in convs {
            let parts = name.split(separator: ".")
            let stage = Int(parts[1].dropFirst(5))!, block = Int(parts[2].dropFirst(5))!
            let blocks = [2: 3, 3: 4, 4: 23, 5: 3][stage]!
            let suffix = blocks == 3 ? String(Array("abc")[block - 1]) : (block == 1 ? "a" : "b\(block - 1)")
            let branch = ["shortcut": "1", "reduce": "2a", "conv3x3": "2b", "increase": "2c"][String(parts[3])]!
            XCTAssertEqual(DeepLabV2.caffeKeyPrefix("res\(stage)\(suffix)_branch\(branch)").map { "base.\($0).weight" }, name)
        }
    }

    /// The converted COCO initialisation: no prefix, a 91-class fc, float64
    /// running statistics, no ASPP (kept at its N(0, 0.01) start).
    func testCOCOInitialisationLayout() throws {
        let expected = try golden()
        var tensors: [SafetensorsTensor] = []
        for tensor in try Safetensors.read("\(Self.directory)/dlv2w16.safetensors").tensors where !tensor.name.contains("aspp") {
            let name = String(tensor.name.dropFirst(5))
            if name.contains("running_") {
                let doubles = try tensor.floatValues().map(Double.init)
                let payload = doubles.withUnsafeBytes { [UInt8]($0) }
                tensors.append(SafetensorsTensor(name: name, type: .float64, shape: tensor.shape, payload: payload))
            } else {
                tensors.append(SafetensorsTensor(name: name, type: tensor.type, shape: tensor.shape, payload: tensor.payload))
            }
        }
        let fc = [Float](repeating: 0.5, count: 91 * 128)
        fc.withUnsafeBufferPointer { tensors.append(SafetensorsTensor(name: "fc.weight", shape: [91, 128, 1, 1], floats: $0)) }
        let path = NSTemporaryDirectory() + "sccam-coco-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Safetensors.write(tensors, metadata: [:], to: path)
        let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: 16))
        network.initializeASPP(seed: 3)
        let asppBefore = Array(network.store.view("base.aspp.c1.weight")!)
        let (source, report) = try network.loadWeights(path)
        XCTAssertEqual(source, .cocoInit)
        XCTAssertEqual(Set(report.keptAtInitialization), Set(network.asppWeightNames + network.asppBiasNames))
        XCTAssertEqual(Array(network.store.view("base.aspp.c1.weight")!), asppBefore)
        let std = (asppBefore.map { Double($0 * $0) }.reduce(0, +) / Double(asppBefore.count)).squareRoot()
        XCTAssertEqual(std, 0.01, accuracy: 0.001, "the ASPP starts at N(0, 0.01)")
        for name in ["base.layer4.block7.conv3x3.bn.running_var", "base.layer1.conv1.conv.weight"] {
            XCTAssertEqual(Array(network.store.view(name)!), Array(expected.store.view(name)!), name)
        }
    }

    func testTorchvisionNames() {
        let cases = [("conv1.weight", "layer1.conv1.conv.weight"), ("bn1.running_var", "layer1.conv1.bn.running_var"),
                     ("layer1.0.conv1.weight", "layer2.block1.reduce.conv.weight"), ("layer3.22.bn3.bias", "layer4.block23.increase.bn.bias"),
                     ("layer4.0.downsample.0.weight", "layer5.block1.shortcut.conv.weight"),
                     ("layer2.0.downsample.1.running_mean", "layer3.block1.shortcut.bn.running_mean"),
                     ("layer2.3.conv2.weight", "layer3.block4.conv3x3.conv.weight")]
        for (torchvision, ours) in cases { XCTAssertEqual(DeepLabV2.torchvisionName(torchvision), ours, torchvision) }
        XCTAssertNil(DeepLabV2.torchvisionName("fc.weight"))
    }
}
