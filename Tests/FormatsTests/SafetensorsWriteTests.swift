import Formats
import Foundation
import TestSupport
import XCTest

/// Writing safetensors files: streamed from the tensors or straight from
/// float buffers, the bytes are the ones `encode` builds in memory, and they
/// read back as written.
final class SafetensorsWriteTests: XCTestCase {
    private let metadata = ["sccam.step": "12", "sccam.note": "a \"quoted\" value"]
    private let tensors: [(name: String, shape: [Int], values: [Float])] = [
        ("conv1a.weight", [4, 3, 3, 3], (0..<108).map { Float($0) * 0.25 - 7 }),
        // One element: the header's padding and the offsets must still line up.
        ("fc8.bias", [1], [-1.5]),
        ("b2.bn.running_var", [5], [1, 2, 3, 4, 5]),
    ]

    private var encoded: [UInt8] {
        Safetensors.encode(tensors.map { SafetensorsTensor(name: $0.name, type: .float32, shape: $0.shape,
                                                           payload: $0.values.withUnsafeBytes { Array($0) }) },
                           metadata: metadata)
    }

    func testStreamedTensorsWriteTheEncodedBytes() throws {
        let folder = try TemporaryDirectory()
        defer { folder.remove() }
        let path = folder.path + "/tensors.safetensors"
        let payloads = tensors.map { SafetensorsTensor(name: $0.name, type: .float32, shape: $0.shape,
                                                        payload: $0.values.withUnsafeBytes { Array($0) }) }
        try Safetensors.write(payloads, metadata: metadata, to: path)
        XCTAssertEqual(try AtomicFile.read(path), encoded)
    }

    func testFloatBuffersWriteTheEncodedBytesAndReadBack() throws {
        let folder = try TemporaryDirectory()
        defer { folder.remove() }
        let path = folder.path + "/floats.safetensors"
        // The values lie in one buffer, as in a parameter store.
        let flat = tensors.flatMap(\.values)
        try flat.withUnsafeBufferPointer { flat in
            var offset = 0
            let views = tensors.map { tensor -> (name: String, shape: [Int], values: UnsafeBufferPointer<Float>) in
                defer { offset += tensor.values.count }
                return (tensor.name, tensor.shape, UnsafeBufferPointer(rebasing: flat[offset..<(offset + tensor.values.count)]))
            }
            try Safetensors.write(floats: views, metadata: metadata, to: path)
        }
        XCTAssertEqual(try AtomicFile.read(path), encoded)
        let (read, readMetadata) = try Safetensors.read(path)
        XCTAssertEqual(readMetadata, metadata)
        XCTAssertEqual(read.map(\.name), tensors.map(\.name))
        XCTAssertEqual(read.map(\.shape), tensors.map(\.shape))
        for (tensor, expected) in zip(read, tensors) { XCTAssertEqual(try tensor.floatValues(), expected.values) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["floats.safetensors"],
                       "no temporary file is left behind")
    }
}
