import Formats
import Foundation
import TestSupport
import XCTest

/// Every binary reader of outside bytes against generated malformed input
/// (see `Fuzzer`): none may crash, hang or allocate without bound, and the
/// hand-made hostile headers (huge sizes, lengths past the end, overflowing
/// dimensions, deep nesting) must all be refused before any allocation.
final class FormatFuzzTests: XCTestCase {
    static let weightFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../NetworkTests/Golden").standardized.path

    /// Fuzzes one reader and checks the bounds; hostile cases must each be refused.
    private func fuzz(_ reader: String, seeds: [[UInt8]], hostile: [[UInt8]], read: ([UInt8]) throws -> Void) {
        for seed in seeds { XCTAssertNoThrow(try read(seed), "\(reader): a seed must be valid") }
        for (index, bytes) in hostile.enumerated() {
            XCTAssertThrowsError(try read(bytes), "\(reader): hostile case \(index) must be refused")
        }
        let report = Fuzzer.run(reader, seeds: seeds, hostile: hostile, read: read)
        print(report)
        XCTAssertEqual(report.cases, Fuzzer.casesPerReader)
        XCTAssertGreaterThan(report.rejected, report.cases / 4, "\(reader): most damaged inputs are refused")
        XCTAssertLessThan(report.slowestSeconds, 2, "\(reader): no case may take long (a hang)")
        XCTAssertLessThan(report.peakGrowthBytes, 512 << 20, "\(reader): allocations stay bounded")
    }

    private func fixture(_ name: String) throws -> [UInt8] { try AtomicFile.read("\(Self.weightFixtures)/\(name)") }

    // MARK: Images

    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    static func bigEndian(_ value: UInt64, _ width: Int) -> [UInt8] { (0..<width).map { UInt8((value >> UInt64(8 * (width - 1 - $0))) & 0xFF) } }

    /// A PNG whose IHDR claims another size, with a valid CRC (libpng checks it).
    static func png(_ bytes: [UInt8], claiming width: UInt64, _ height: UInt64) -> [UInt8] {
        var out = bytes
        out.replaceSubrange(16..<24, with: bigEndian(width, 4) + bigEndian(height, 4))
        out.replaceSubrange(29..<33, with: bigEndian(UInt64(crc32(out[12..<29])), 4))
        return out
    }

    func testPNG() throws {
        var pixels = [UInt8](repeating: 0, count: 24 * 17 * 3)
        for i in pixels.indices { pixels[i] = UInt8((i * 37) % 256) }
        let rgb = try PNG.encode(RGBImage(width: 24, height: 17, pixels: pixels))
        let palette = try PNG.encode(IndexedImage(width: 20, height: 13, indices: (0..<260).map { UInt8($0 % 21) }, palette: VOCPalette.colors))
        let grey = try PNG.encode(IndexedImage(width: 16, height: 16, indices: (0..<256).map { UInt8($0) }))
        let hostile = [(1_000_000, 1_000_000), (0x7FFF_FFFF, 1), (100_000, 100_000), (20_000, 20_000), (0, 5)]
            .map { Self.png(rgb, claiming: UInt64($0.0), UInt64($0.1)) }
        fuzz("PNG", seeds: [rgb, palette, grey], hostile: hostile) { bytes in
            _ = try PNG.decodeRGB(bytes, path: "fuzz.png")
            _ = try? PNG.decodeIndexed(bytes, path: "fuzz.png")
        }
    }

    func testJPEG() throws {
        var pixels = [UInt8](repeating: 0, count: 40 * 31 * 3)
        for i in pixels.indices { pixels[i] = UInt8((i * 13) % 256) }
        let seeds = try [95, 50, 10].map { try JPEG.encode(RGBImage(width: 40, height: 31, pixels: pixels), quality: $0) }
        let frame = try XCTUnwrap((0..<(seeds[0].count - 1)).first { seeds[0][$0] == 0xFF && seeds[0][$0 + 1] == 0xC0 })
        let hostile = [(65535, 65535), (40_000, 40_000), (0, 0)].map { size -> [UInt8] in
            var bytes = seeds[0]
            bytes.replaceSubrange((frame + 5)..<(frame + 9), with: Self.bigEndian(UInt64(size.1), 2) + Self.bigEndian(UInt64(size.0), 2))
            return bytes
        } + [Array(seeds[0].prefix(seeds[0].count / 2))]
        fuzz("JPEG", seeds: seeds, hostile: hostile) { _ = try JPEG.decode($0, path: "fuzz.jpg") }
    }

    // MARK: Arrays

    static func npy(header: String, version: UInt8 = 1, payload: [UInt8] = [0, 0, 0, 0]) -> [UInt8] {
        let text = Array(header.utf8)
        let length = version == 1 ? [UInt8(text.count & 0xFF), UInt8(text.count >> 8)] : (0..<4).map { UInt8((text.count >> (8 * $0)) & 0xFF) }
        return [0x93] + Array("NUMPY".utf8) + [version, 0] + length + text + payload
    }

    func testNPY() throws {
        let seeds = [NPY.encode(NPYArray((0..<12).map(Float.init), shape: [3, 4])), NPY.encode(NPYArray([UInt8](1...5), shape: [5])),
                     NPY.encode(NPYArray([Int64(7)], shape: [])), NPY.encode(NPYArray((0..<6).map(Double.init), shape: [1, 2, 3]))]
        let shapes = ["(4611686018427387904, 4)", "(-1,)", "(9223372036854775807, 2)", "(1099511627776, 1099511627776)", "(3037000500, 3037000500)"]
        var hostile = shapes.map { Self.npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': \($0), }\n") }
        hostile.append([0x93] + Array("NUMPY".utf8) + [2, 0, 0xFF, 0xFF, 0xFF, 0xFF] + Array("{'descr'".utf8))
        hostile.append(Self.npy(header: "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n"))
        fuzz("npy", seeds: seeds, hostile: hostile) { _ = try NPY.decode($0, path: "fuzz.npy") }
    }

    static func safetensors(header: String, data: [UInt8] = [0, 0, 0, 0], claimedLength: UInt64? = nil) -> [UInt8] {
        let text = Array(header.utf8)
        let length = claimedLength ?? UInt64(text.count)
        return (0..<8).map { UInt8((length >> (8 * UInt64($0))) & 0xFF) } + text + data
    }

    func testSafetensors() throws {
        let seeds = [
            Safetensors.encode([Self.tensor("a", [1, 2, 3, 4], shape: [2, 2]),
                                Self.tensor("b.weight", [5], shape: [1, 1, 1, 1])], metadata: ["k": "v"]),
            Safetensors.encode([Self.tensor("c", (0..<30).map(Float.init), shape: [5, 6])]),
        ]
        let hostile = [
            Self.safetensors(header: #"{"x":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}}"#),
            Self.safetensors(header: #"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#),
            Self.safetensors(header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,1099511627776]}}"#),
            Self.safetensors(header: #"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#),
            Self.safetensors(header: "{}", claimedLength: 0xFFFF_FFFF_FFFF_FFFF),
            Self.safetensors(header: "{}", claimedLength: 0x7FFF_FFFF_FFFF_FFFF),
            Self.safetensors(header: String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)),
            Self.safetensors(header: "{\"a\":" + String(repeating: "{\"a\":", count: 50_000) + "1" + String(repeating: "}", count: 50_001)),
        ]
        fuzz("safetensors", seeds: seeds, hostile: hostile) { _ = try Safetensors.decode($0, path: "fuzz.safetensors") }
    }

    static func tensor(_ name: String, _ floats: [Float], shape: [Int]) -> SafetensorsTensor {
        SafetensorsTensor(name: name, type: .float32, shape: shape, payload: floats.withUnsafeBytes { Array($0) })
    }

    // MARK: Weight files

    /// A zip-format checkpoint around a hand-written pickle (and one 8-byte storage).
    static func torchZip(_ pickle: [UInt8]) -> [UInt8] {
        HandZip.stored([("a/data.pkl", pickle), ("a/data/0", [UInt8](repeating: 0, count: 8))])
    }

    func testPyTorchZip() throws {
        let seeds = try ["views_wrapped.pth", "small_checkpoint.pth", "small_cuda_parameters.pth"].map(fixture)
        let huge = HandPickle.stateDict(entries: [("w", storageKey: "0", count: 2, offset: 0, size: [1 << 30, 1 << 30], stride: [1, 1])])
        let overflowing = HandPickle.stateDict(entries: [("w", storageKey: "0", count: 2, offset: 0, size: [3_037_000_500, 3_037_000_500], stride: [1, 1])])
        let farOffset = HandPickle.stateDict(entries: [("w", storageKey: "0", count: 2, offset: 0x7FFF_FFFF, size: [2], stride: [1])])
        let wideStride = HandPickle.stateDict(entries: [("w", storageKey: "0", count: 2, offset: 0, size: [2, 2], stride: [0x7FFF_FFFF, 1])])
        var pastEnd = seeds[0]
        // The end-of-central-directory record's directory offset, pointed past the end.
        if let eocd = (0..<(pastEnd.count - 3)).last(where: { pastEnd[$0] == 0x50 && pastEnd[$0 + 1] == 0x4B && pastEnd[$0 + 2] == 5 && pastEnd[$0 + 3] == 6 }) {
            pastEnd.replaceSubrange((eocd + 16)..<(eocd + 20), with: [0xF0, 0xFF, 0xFF, 0x7F])
        }
        let hostile = [
            Self.torchZip(huge), Self.torchZip(overflowing), Self.torchZip(farOffset), Self.torchZip(wideStride), pastEnd,
            Self.torchZip([0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 500_000) + [0x2E]),  // deep tuples
            Self.torchZip([0x80, 0x02] + [UInt8](repeating: 0x28, count: 500_000) + [0x2E]),  // a million MARKs
            Self.torchZip([0x80, 0x02, 0x58, 0xFF, 0xFF, 0xFF, 0xFF, 0x61]),  // a 4 GB string
            Self.torchZip([0x80, 0x02, 0x8D] + [UInt8](repeating: 0xFF, count: 8)),  // a 2^64 string
            Self.torchZip([0x80, 0x02, 0x6A, 0xFF, 0xFF, 0xFF, 0xFF, 0x2E]),  // memo 4G is empty
            Self.torchZip([0x80, 0x02, 0x7D, 0x4B, 0x01, 0x4B, 0x02] + [UInt8](repeating: 0x73, count: 10) + [0x2E]),  // SETITEM underflow
        ]
        fuzz("PyTorch zip", seeds: seeds, hostile: hostile) { _ = try TorchCheckpoint.decode($0, path: "fuzz.pth") }
    }

    func testPyTorchLegacy() throws {
        let seeds = try ["views_wrapped_legacy.pth", "small_net_legacy.pth", "small_cuda_parameters_legacy.pth"].map(fixture)
        // The legacy file ends with each storage's int64 element count and its data: claim 2^62 elements.
        // small_net_legacy's storage of conv.weight: its int64 count, 108, then 432 bytes.
        var hugeStorage = seeds[1]
        let le = { (value: UInt64) in HandMXNet.le(value, 8) }
        let count = try XCTUnwrap((0..<(hugeStorage.count - 440)).first { Array(hugeStorage[$0..<($0 + 8)]) == le(108) })
        hugeStorage.replaceSubrange(count..<(count + 8), with: le(1 << 62))
        let hostile = [hugeStorage, Array(seeds[0].prefix(seeds[0].count - 3)), Array(seeds[0].prefix(40))]
        fuzz("PyTorch legacy", seeds: seeds, hostile: hostile) { _ = try TorchCheckpoint.decode($0, path: "fuzz.pth") }
    }

    func testMXNetParams() throws {
        let seeds = [HandMXNet.file([("arg:conv1a_weight", [2, 3], [UInt8](repeating: 1, count: 24)), ("aux:bn7_moving_mean", [2], [UInt8](repeating: 2, count: 8)),
                                     ("arg:res2a_branch1_weight", [1, 1, 1, 1], [UInt8](repeating: 3, count: 4))])]
        var hugeCount = seeds[0]
        hugeCount.replaceSubrange(16..<24, with: HandMXNet.le(1 << 40, 8))
        let hostile = [
            hugeCount,
            HandMXNet.file([("a", [0x7FFF_FFFE, 0x7FFF_FFFE], [UInt8](repeating: 0, count: 16))]),
            HandMXNet.file([("a", [1 << 20, 1 << 20, 1 << 20], [UInt8](repeating: 0, count: 16))]),
            Array(seeds[0].prefix(seeds[0].count - 5)),
        ]
        fuzz("MXNet params", seeds: seeds, hostile: hostile) { _ = try MXNetParams.decode($0, path: "fuzz.params") }
    }

    func testTensorBoardRecords() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-fuzz-events")
        defer { temporary.remove() }
        let writer = try TensorBoardWriter(folder: temporary.path, host: "fuzz")
        writer.scalars([("loss", 0.5), ("lr", 0.01)], step: 1)
        writer.scalars([("loss", 0.25)], step: 2)
        writer.flush()
        let seed = try AtomicFile.read(writer.path)
        var hugeLength = seed
        hugeLength.replaceSubrange(0..<8, with: [UInt8](repeating: 0xFF, count: 8))
        var pastEnd = seed
        pastEnd.replaceSubrange(0..<8, with: [0, 0, 0, 0x40, 0, 0, 0, 0])
        fuzz("TensorBoard records", seeds: [seed], hostile: [hugeLength, pastEnd, Array(seed.prefix(seed.count - 1))]) {
            _ = try TensorBoardWriter.records(in: $0, path: "fuzz.tfevents")
        }
    }
}
