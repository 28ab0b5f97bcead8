import Formats
import Foundation
import Network
import TestSupport
import XCTest

final class WeightFileTests: XCTestCase {
    static let directory = GoldenTests.directory

    private func twin() throws -> [SafetensorsTensor] {
        try Safetensors.read("\(Self.directory)/r38w16_round0.safetensors").tensors
    }

    func testPyTorchZipAndLegacyFilesHoldExactlyTheSafetensorsTensors() throws {
        let expected = Dictionary(uniqueKeysWithValues: try twin().map { ($0.name, $0) })
        for file in ["r38w16_round0.pth", "r38w16_round0_legacy.pth"] {
            let tensors = try TorchCheckpoint.read("\(Self.directory)/\(file)")
            let floats = tensors.filter { !$0.name.hasSuffix("num_batches_tracked") }
            XCTAssertEqual(floats.count, 192, file)
            XCTAssertEqual(tensors.count - floats.count, 37, "\(file): one int64 counter per BN layer")
            XCTAssertEqual(floats.map(\.name), try twin().map(\.name), "\(file): the file's order is kept")
            for tensor in floats {
                let reference = try XCTUnwrap(expected[tensor.name], "\(file): unexpected \(tensor.name)")
                XCTAssertEqual(tensor.shape, reference.shape, tensor.name)
                XCTAssertEqual(tensor.type, .float32)
                XCTAssertEqual(tensor.payload, reference.payload, "\(file): \(tensor.name) differs")
            }
            let counter = try XCTUnwrap(tensors.first { $0.name == "b2.bn_branch2a.num_batches_tracked" })
            XCTAssertEqual(counter.type, .int64)
            XCTAssertEqual(counter.payload, [UInt8](repeating: 0, count: 8))
            // And the model loads them strictly.
            let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: 0))
            let report = try network.loadWeights("\(Self.directory)/\(file)")
            XCTAssertEqual(report.ignored.count, 37)
            XCTAssertEqual(Array(network.store.view("fc8.weight")!), try expected["fc8.weight"]!.floatValues())
        }
    }

    func testViewsWithStridesOffsetsAndOtherTypes() throws {
        for file in ["views_wrapped.pth", "views_wrapped_legacy.pth"] {
            let tensors = Dictionary(uniqueKeysWithValues: try TorchCheckpoint.read("\(Self.directory)/\(file)").map { ($0.name, $0) })
            let transposed = try XCTUnwrap(tensors["transposed"])
            XCTAssertEqual(transposed.shape, [12, 10])
            // transposed[i][j] = source[j][i] = 12 j + i
            XCTAssertEqual(try transposed.floatValues(), (0..<12).flatMap { i in (0..<10).map { j in Float(12 * j + i) } }, file)
            let rows = try XCTUnwrap(tensors["row_slice"])
            XCTAssertEqual(rows.shape, [2, 12])
            XCTAssertEqual(try rows.floatValues(), (36..<60).map(Float.init), file)
            let doubles = try XCTUnwrap(tensors["float64"])
            XCTAssertEqual(doubles.type, .float64)
            let linspace = doubles.payload.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
            XCTAssertEqual(linspace.count, 7)
            for (i, value) in linspace.enumerated() { XCTAssertEqual(value, Double(i) / 6, accuracy: 1e-15) }
            XCTAssertEqual(try tensors["half"]?.floatValues(), [1.5, -2.25, 65504])
            let integers = try XCTUnwrap(tensors["int64"])
            XCTAssertEqual(integers.shape, [2, 2])
            XCTAssertEqual(integers.payload.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }, [1, -2, 3, 4])
        }
    }

    /// A checkpoint built by hand, byte by byte, as torch.save would for a
    /// non-contiguous view with a storage offset.
    func testHandBuiltZipWithStridesAndOffset() throws {
        // storage: 24 floats 0..23; tensor w: size (3, 4), stride (1, 6), offset 2 -> w[i][j] = 2 + i + 6 j
        let pickle = HandPickle.stateDict(entries: [
            ("w", storageKey: "0", count: 24, offset: 2, size: [3, 4], stride: [1, 6]),
            ("v", storageKey: "0", count: 24, offset: 23, size: [1], stride: [1]),
        ])
        let storage = (0..<24).flatMap { withUnsafeBytes(of: Float($0)) { Array($0) } }
        let zip = HandZip.stored([("archive/data.pkl", pickle), ("archive/byteorder", Array("little".utf8)), ("archive/data/0", storage)])
        let tensors = try TorchCheckpoint.decode(zip, path: "hand.pth")
        XCTAssertEqual(tensors.map(\.name), ["w", "v"])
        XCTAssertEqual(try tensors[0].floatValues(), (0..<3).flatMap { i in (0..<4).map { j in Float(2 + i + 6 * j) } })
        XCTAssertEqual(try tensors[1].floatValues(), [23])
        // A view that runs past its storage is refused.
        let tooFar = HandPickle.stateDict(entries: [("w", storageKey: "0", count: 24, offset: 10, size: [3, 4], stride: [1, 6])])
        XCTAssertThrowsError(try TorchCheckpoint.decode(HandZip.stored([("a/data.pkl", tooFar), ("a/data/0", storage)]), path: "far.pth")) {
            XCTAssertTrue("\($0)".contains("reaches element"), "\($0)")
        }
    }

    func testMXNetParamsThroughTheReferenceKeyMapping() throws {
        XCTAssertEqual(WeightFiles.referenceName(mxnet: "arg:conv1a_weight"), "conv1a.weight")
        XCTAssertEqual(WeightFiles.referenceName(mxnet: "res2a_branch1_weight"), "b2.conv_branch1.weight")
        XCTAssertEqual(WeightFiles.referenceName(mxnet: "res2b1_branch2b1_weight"), "b2_1.conv_branch2b1.weight")
        XCTAssertEqual(WeightFiles.referenceName(mxnet: "arg:bn2a_branch2a_gamma"), "b2.bn_branch2a.weight")
        XCTAssertEqual(WeightFiles.referenceName(mxnet: "aux:bn4b5_branch2b1_moving_mean"), "b4_5.bn_branch2b1.running_mean")
        XCTAssertEqual(WeightFiles.referenceName(mxnet: "aux:bn6a_branch2b2_moving_var"), "b6.bn_branch2b2.running_var")
        XCTAssertEqual(WeightFiles.referenceName(mxnet: "res7a_branch2b2_weight"), "b7.conv_branch2b2.weight")
        XCTAssertEqual(WeightFiles.referenceName(mxnet: "bn7_beta"), "bn7.bias")
        XCTAssertNil(WeightFiles.referenceName(mxnet: "arg:linear1000_weight"))

        // A complete ImageNet-style file: every backbone tensor of the width-16
        // golden model under its MXNet name, in the three array layouts, plus the classifier.
        let backbone = try twin().filter { !$0.name.hasPrefix("fc8") }
        XCTAssertEqual(backbone.count, 191)
        var arrays = backbone.map { (HandMXNet.name(for: $0.name), $0.shape, $0.payload) }
        arrays.append(("arg:linear1000_weight", [1000, 4], [UInt8](repeating: 0, count: 16_000)))
        let temporary = try TemporaryDirectory(prefix: "sccam-mxnet")
        defer { temporary.remove() }
        let path = temporary.path + "/ilsvrc-cls_rna-a1_cls1000_ep-0001.params"
        try AtomicFile.write(HandMXNet.file(arrays), to: path)

        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: 1))
        let headBefore = Array(network.store.view("fc8_20.weight")!)
        let report = try network.loadWeights(path)
        XCTAssertEqual(report.keptAtInitialization, ["fc8_20.weight", "fc8_200.weight"], "heads keep their Xavier init")
        XCTAssertEqual(Array(network.store.view("fc8_20.weight")!), headBefore)
        for tensor in backbone {
            XCTAssertEqual(Array(network.store.view(tensor.name)!), try tensor.floatValues(), tensor.name)
        }
        // A file missing a backbone tensor is refused, naming it.
        try AtomicFile.write(HandMXNet.file(arrays.filter { $0.0 != "arg:conv1a_weight" }), to: path)
        XCTAssertThrowsError(try network.loadWeights(path)) { XCTAssertTrue("\($0)".contains("missing tensor conv1a.weight"), "\($0)") }
    }

    func testMalformedInputGivesClearErrors() throws {
        let zip = try AtomicFile.read("\(Self.directory)/views_wrapped.pth")
        XCTAssertThrowsError(try TorchCheckpoint.decode(Array(zip.prefix(zip.count - 30)), path: "cut.pth")) {
            XCTAssertTrue("\($0)".contains("cut.pth"), "\($0)")
        }
        let evil = HandPickle.globalCall(module: "os", name: "system")
        XCTAssertThrowsError(try TorchCheckpoint.decode(HandZip.stored([("a/data.pkl", evil)]), path: "evil.pth")) {
            XCTAssertTrue("\($0)".contains("refusing global os.system"), "\($0)")
        }
        var legacy = try AtomicFile.read("\(Self.directory)/views_wrapped_legacy.pth")
        legacy[5] ^= 0xFF
        XCTAssertThrowsError(try WeightFiles.detect(legacy, path: "magic.pth")) { XCTAssertTrue("\($0)".contains("magic.pth")) }
        XCTAssertThrowsError(try MXNetParams.decode([0x13, 1, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 16), path: "x.params")) {
            XCTAssertTrue("\($0)".contains("list magic"), "\($0)")
        }
    }

    /// Random truncations and byte flips of real files: errors are fine, crashes are not.
    func testFuzzedFilesNeverCrash() throws {
        var generator = SeededGenerator(seed: 2026)
        let mxnet = HandMXNet.file([("arg:conv1a_weight", [2, 3], [UInt8](repeating: 1, count: 24)), ("bn7_gamma", [2], [UInt8](repeating: 2, count: 8))])
        let files: [[UInt8]] = [try AtomicFile.read("\(Self.directory)/views_wrapped.pth"),
                                try AtomicFile.read("\(Self.directory)/views_wrapped_legacy.pth"), mxnet]
        var cases = 0, rejected = 0
        for original in files {
            for _ in 0..<1000 {
                var bytes = original
                if Bool.random(using: &generator) {
                    bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &generator)))
                } else {
                    for _ in 0..<Int.random(in: 1...8, using: &generator) {
                        bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                    }
                }
                cases += 1
                do {
                    switch try WeightFiles.detect(bytes, path: "fuzz") {
                    case .torchZip, .torchLegacy: _ = try TorchCheckpoint.decode(bytes, path: "fuzz")
                    case .mxnet: _ = try MXNetParams.decode(bytes, path: "fuzz")
                    case .safetensors: _ = try Safetensors.decode(bytes, path: "fuzz")
                    }
                } catch {
                    rejected += 1
                }
            }
        }
        XCTAssertEqual(cases, 3000)
        XCTAssertGreaterThan(rejected, 1000, "most damaged files must be rejected")
    }
}

final class ConvertCommandTests: XCTestCase {
    func testLegacyCheckpointConvertsToTheGoldenSafetensors() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-convert")
        defer { temporary.remove() }
        let output = temporary.path + "/round0.safetensors"
        let result = try TestProcess.sccam(["convert", "\(GoldenTests.directory)/r38w16_round0_legacy.pth", output])
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.standardOutput.contains("pytorch (legacy)"), result.standardOutput)
        XCTAssertTrue(result.standardOutput.contains("width 1/16, round-0 classifier"), result.standardOutput)
        XCTAssertTrue(result.standardOutput.contains("dropped 37 BatchNorm batch counter(s)"), result.standardOutput)
        let ours = Dictionary(uniqueKeysWithValues: try Safetensors.read(output).tensors.map { ($0.name, $0.payload) })
        let golden = try Safetensors.read("\(GoldenTests.directory)/r38w16_round0.safetensors").tensors
        XCTAssertEqual(ours.count, golden.count)
        for tensor in golden { XCTAssertEqual(ours[tensor.name], tensor.payload, tensor.name) }
    }

    func testNonCheckpointFailsWithTheFileName() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-convert")
        defer { temporary.remove() }
        try AtomicFile.write("hello", to: temporary.path + "/notes.pth")
        let result = try TestProcess.sccam(["convert", temporary.path + "/notes.pth", temporary.path + "/out.safetensors"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.standardError.contains("notes.pth"), result.standardError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary.path + "/out.safetensors"))
    }
}
