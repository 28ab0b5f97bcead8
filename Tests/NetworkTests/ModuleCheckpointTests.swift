import Formats
import Foundation
import Network
import TestSupport
import XCTest

/// Checkpoints written by PyTorch's own `torch.save` on real `nn.Module`s
/// (`Golden/make_module_checkpoints.py`, torch 2.13.0+cpu, says how), as
/// users and the reference save them: state dicts with `_metadata` (a BUILD
/// opcode), `num_batches_tracked`, training checkpoints that wrap the state
/// dict, and Parameters saved on `cuda:0`. The tests recompute every value.
final class ModuleCheckpointTests: XCTestCase {
    static let directory = GoldenTests.directory

    /// `value()` of the fixture script, in Swift: exact in float32.
    static func expectedValue(tensor t: Int, element i: Int, kind: String) -> Float {
        let n = (i * 37 + t * 101) % 251 - 125
        switch kind {
        case "running_var": return 0.5 + Float((i * 37 + t) % 64) / 64
        case "bn": return Float(n) / 1024
        default: return Float(n) / 8192
        }
    }

    /// Checks each tensor against the values the script gave the entry at
    /// its state-dict position (`positions`), int64 counters included.
    private func checkFilled(_ tensors: [SafetensorsTensor], positions: [String: Int], file: String) throws {
        for tensor in tensors {
            let t = try XCTUnwrap(positions[tensor.name], "\(file): unexpected \(tensor.name)")
            if tensor.name.hasSuffix("num_batches_tracked") {
                XCTAssertEqual(tensor.type, .int64, tensor.name)
                XCTAssertEqual(tensor.shape, [], tensor.name)
                XCTAssertEqual(tensor.payload.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }, [Int64(t)], "\(file): \(tensor.name)")
                continue
            }
            let kind = tensor.name.hasSuffix("running_var") ? "running_var" : tensor.shape.count == 1 ? "bn" : "conv"
            let expected = (0..<tensor.shape.reduce(1, *)).map { Self.expectedValue(tensor: t, element: $0, kind: kind) }
            XCTAssertEqual(tensor.type, .float32, tensor.name)
            XCTAssertEqual(try tensor.floatValues(), expected, "\(file): \(tensor.name)")
        }
    }

    func testStateDictOfARealModuleLoadsExactlyFromBothFormats() throws {
        // The golden twin's names (safetensors sorts them) in the model's registration order.
        let goldenNames = Set(try Safetensors.read("\(Self.directory)/r38w16_round1.safetensors").tensors.map(\.name))
        let modelNames = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: 1)).store.tensors().map(\.name)
        XCTAssertEqual(Set(modelNames), goldenNames)
        for file in ["r38w16_module.pth", "r38w16_module_legacy.pth"] {
            let path = "\(Self.directory)/\(file)"
            let tensors = try TorchCheckpoint.read(path)
            XCTAssertEqual(tensors.count, 193 + 37, "\(file): every tensor and one batch counter per BatchNorm")
            XCTAssertTrue(tensors.map(\.name).filter { !$0.hasSuffix("num_batches_tracked") } == modelNames, "\(file): the model's order")
            let positions = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($0.element.name, $0.offset) })
            try checkFilled(tensors, positions: positions, file: file)
            // The network the shapes describe loads it strictly, values intact.
            let network = try SCCAMNetwork.fromWeights(path)
            XCTAssertEqual(network.configuration.widthDivisor, 16)
            XCTAssertEqual(network.configuration.round, 1)
            XCTAssertEqual(network.configuration.subcategoriesPerClass, 10)
            for tensor in tensors where !tensor.name.hasSuffix("num_batches_tracked") {
                XCTAssertEqual(Array(network.store.view(tensor.name)!), try tensor.floatValues(), tensor.name)
            }
        }
    }

    /// The state-dict order of the script's `Small` module.
    static let smallNames = ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                             "bn.num_batches_tracked", "fc.weight", "fc.bias"]
    static var smallPositions: [String: Int] {
        Dictionary(uniqueKeysWithValues: smallNames.enumerated().map { ($0.element, $0.offset) })
    }

    func testTrainingCheckpointsGiveTheirStateDictAndSayWhatWasSkipped() throws {
        for (file, wrapper, skipped) in [("small_checkpoint.pth", "state_dict", "epoch, optimizer, best_miou"),
                                         ("small_net_legacy.pth", "net", "iteration")] {
            var notes: [String] = []
            let tensors = try TorchCheckpoint.read("\(Self.directory)/\(file)") { notes.append($0) }
            XCTAssertEqual(tensors.map(\.name), Self.smallNames, file)
            try checkFilled(tensors, positions: Self.smallPositions, file: file)
            XCTAssertEqual(notes.count, 1, "\(notes)")
            XCTAssertTrue(notes.first?.contains("under '\(wrapper)'; skipped \(skipped)") == true, "\(notes)")
        }
    }

    func testParametersSavedOnAGPULoadOnTheCPU() throws {
        for file in ["small_cuda_parameters.pth", "small_cuda_parameters_legacy.pth"] {
            let bytes = try AtomicFile.read("\(Self.directory)/\(file)")
            XCTAssertNotNil(String(decoding: bytes, as: UTF8.self).range(of: "cuda:0"), "\(file) records its storages on cuda:0")
            let tensors = try TorchCheckpoint.decode(bytes, path: file)
            XCTAssertEqual(tensors.map(\.name), ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"], file)
            try checkFilled(tensors, positions: Self.smallPositions, file: file)
        }
    }

    func testBuildIsAcceptedOnlyOnDictsAndWithAttributeState() throws {
        func pickle(_ body: [UInt8]) -> [UInt8] { HandZip.stored([("a/data.pkl", [0x80, 0x02] + body + [0x2E])]) }
        let tensorEntry = Array(HandPickle.stateDict(entries: [("w", storageKey: "0", count: 2, offset: 0, size: [2], stride: [1])]).dropFirst(2).dropLast())
        func withStorage(_ pickleBytes: [UInt8]) -> [UInt8] {
            HandZip.stored([("a/data.pkl", pickleBytes), ("a/data/0", [UInt8](repeating: 0, count: 8))])
        }
        // OrderedDict + items + BUILD({'_metadata': OrderedDict()}): accepted.
        let metadata = [0x7D] + HandPickle.string("_metadata") + HandPickle.global("collections", "OrderedDict") + [0x29, 0x52, 0x73]
        XCTAssertEqual(try TorchCheckpoint.decode(withStorage([0x80, 0x02] + tensorEntry + metadata + [0x62, 0x2E]), path: "build.pth").map(\.name), ["w"])
        // A (state, slotstate) pair: accepted.
        let pair = [0x7D, 0x4E, 0x86] as [UInt8]
        XCTAssertEqual(try TorchCheckpoint.decode(withStorage([0x80, 0x02] + tensorEntry + pair + [0x62, 0x2E]), path: "pair.pth").map(\.name), ["w"])
        // BUILD on a list, or with an integer as state: refused.
        XCTAssertThrowsError(try TorchCheckpoint.decode(pickle([0x5D, 0x7D, 0x62]), path: "list.pth")) {
            XCTAssertTrue("\($0)".contains("BUILD on something that is not a dict"), "\($0)")
        }
        XCTAssertThrowsError(try TorchCheckpoint.decode(pickle([0x7D, 0x4B, 0x05, 0x62]), path: "state.pth")) {
            XCTAssertTrue("\($0)".contains("neither a dict of attributes"), "\($0)")
        }
        // Other globals are still refused by name, wherever they appear.
        XCTAssertThrowsError(try TorchCheckpoint.decode(pickle(HandPickle.global("argparse", "Namespace")), path: "args.pth")) {
            XCTAssertTrue("\($0)".contains("refusing global argparse.Namespace"), "\($0)")
        }
    }

    func testDeepNestingIsRefusedNotRecursed() throws {
        // None wrapped in a million one-element tuples: one byte per level.
        let deep = HandZip.stored([("a/data.pkl", [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 1_000_000) + [0x2E])])
        XCTAssertThrowsError(try TorchCheckpoint.decode(deep, path: "deep.pth")) {
            XCTAssertTrue("\($0)".contains("nested deeper than"), "\($0)")
        }
        // Lists appended into lists, the other way to nest.
        let lists = [0x80, 0x02] + [UInt8](repeating: 0x5D, count: 200_000) + [UInt8](repeating: 0x61, count: 199_999) + [0x2E]
        XCTAssertThrowsError(try TorchCheckpoint.decode(HandZip.stored([("a/data.pkl", lists)]), path: "lists.pth")) {
            XCTAssertTrue("\($0)".contains("nested deeper than"), "\($0)")
        }
    }
}

final class ModuleCheckpointCommandTests: XCTestCase {
    func testConvertGivesTheModuleTensorsFromBothFormats() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-convert-module")
        defer { temporary.remove() }
        for file in ["r38w16_module.pth", "r38w16_module_legacy.pth"] {
            let output = "\(temporary.path)/\(file).safetensors"
            let result = try TestProcess.sccam(["convert", "\(GoldenTests.directory)/\(file)", output])
            XCTAssertEqual(result.status, 0, "\(result)")
            XCTAssertTrue(result.standardOutput.contains("SC-CAM classifier (fc8_20, fc8_200, k = 10)"), result.standardOutput)
            XCTAssertTrue(result.standardOutput.contains("dropped 37 BatchNorm batch counter(s)"), result.standardOutput)
            let expected = try TorchCheckpoint.read("\(GoldenTests.directory)/\(file)").filter { !$0.name.hasSuffix("num_batches_tracked") }
            let written = try Safetensors.read(output).tensors
            XCTAssertEqual(written.map(\.name), expected.map(\.name))
            XCTAssertEqual(written.map(\.payload), expected.map(\.payload))
        }
    }

    /// extract, infer and train --init take the files as they are.
    func testExtractInferAndTrainTakeModuleCheckpointsDirectly() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-module-stages")
        defer { temporary.remove() }
        let voc = try TinyVOC.make(in: temporary.path)
        let zip = "\(GoldenTests.directory)/r38w16_module.pth", legacy = "\(GoldenTests.directory)/r38w16_module_legacy.pth"
        let extract = try TestProcess.sccam(["extract", "--voc-root", voc.root, "--list", "train", "--weights", zip, "--round", "1",
                                             "--work", temporary.path + "/work", "--threads", "1"])
        XCTAssertEqual(extract.status, 0, "\(extract)")
        XCTAssertEqual(try NPY.read(temporary.path + "/work/features/R1_features.npy").shape, [4, 256])
        let infer = try TestProcess.sccam(["infer", "--voc-root", voc.root, "--list", "train", "--weights", legacy,
                                           "--work", temporary.path + "/work", "--scales", "1", "--threads", "1"])
        XCTAssertEqual(infer.status, 0, "\(infer)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: temporary.path + "/work/cams/2007_000032.npy"))
        let train = try TestProcess.sccam(["train", "--voc-root", voc.root, "--work", temporary.path + "/train", "--round", "0",
                                           "--list", "train", "--init", legacy, "--batch", "4", "--crop", "32", "--epochs", "1", "--checkpoint-every", "1",
                                           "--threads", "1"], timeout: 600)
        XCTAssertEqual(train.status, 0, "\(train)")
        // The backbone starts from the file: epoch 0's checkpoint is after one step, so compare the frozen stem.
        let trained = try Safetensors.read(temporary.path + "/train/weights/R0_ep0.safetensors").tensors
        let stem = try XCTUnwrap(trained.first { $0.name == "conv1a.weight" })
        XCTAssertEqual(stem.payload, try TorchCheckpoint.read(legacy).first { $0.name == "conv1a.weight" }?.payload)
    }
}
