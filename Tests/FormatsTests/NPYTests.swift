import Formats
import Foundation
import TestSupport
import XCTest

final class NPYTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var directory: String { temporary.path }

    override func setUpWithError() throws { temporary = try TemporaryDirectory(prefix: "sccam-npy") }
    override func tearDown() { temporary.remove() }

    func testHeaderBytesAreNumPysVersionOne() throws {
        let bytes = NPY.encode(NPYArray([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3]))
        XCTAssertEqual(Array(bytes.prefix(8)), [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0, "data must start on a 64-byte boundary")
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), header)
        XCTAssertTrue(header.hasSuffix("\n"))
        XCTAssertEqual(bytes.count, 10 + headerLength + 24)
        let payload = Array(bytes[(10 + headerLength)...])
        XCTAssertEqual(Array(payload[4..<8]), [0x00, 0x00, 0x00, 0x40], "2.0 as little-endian float32")
    }

    func testRoundTripOfEveryTypeAndRank() throws {
        let floats: [Float] = (0..<24).map { Float($0) * 0.5 - 3 }
        try NPY.write(floats, shape: [2, 3, 4], to: directory + "/f.npy")
        let f = try NPY.read(directory + "/f.npy")
        XCTAssertEqual(f.shape, [2, 3, 4])
        XCTAssertEqual(try f.values(as: Float.self), floats)
        XCTAssertThrowsError(try f.values(as: Int32.self))

        try NPY.write([Int32(-7), 0, 2_000_000_000], shape: [3], to: directory + "/i.npy")
        XCTAssertEqual(try NPY.read(directory + "/i.npy").values(as: Int32.self), [-7, 0, 2_000_000_000])
        try NPY.write([UInt8](0...255), shape: [16, 16], to: directory + "/u.npy")
        XCTAssertEqual(try NPY.read(directory + "/u.npy").values(as: UInt8.self), [UInt8](0...255))
        try NPY.write([3.25] as [Double], shape: [], to: directory + "/scalar.npy")
        let scalar = try NPY.read(directory + "/scalar.npy")
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.floatValues(), [3.25])
        try NPY.write([Int64(5), -1], shape: [1, 2, 1], to: directory + "/l.npy")
        XCTAssertEqual(try NPY.read(directory + "/l.npy").floatValues(), [5, -1])
        try NPY.write([Float](), shape: [0, 4096], to: directory + "/empty.npy")
        XCTAssertEqual(try NPY.read(directory + "/empty.npy").shape, [0, 4096])
    }

    func testTruncatedFileGivesAnErrorNamingIt() throws {
        let path = directory + "/features.npy"
        let bytes = NPY.encode(NPYArray([Float](repeating: 1, count: 100), shape: [10, 10]))
        try AtomicFile.write(Array(bytes.dropLast(8)), to: path)
        XCTAssertThrowsError(try NPY.read(path)) { error in
            XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("truncated"), "\(error)")
        }
        try AtomicFile.write(Array("PK not npy".utf8), to: path)
        XCTAssertThrowsError(try NPY.read(path)) { XCTAssertTrue("\($0)".contains("not a .npy")) }
    }

    func testNumPyReadsOurFilesAndWeReadNumPys() throws {
        try XCTSkipUnless(TestProcess.hasNumPy, "NumPy is not installed; the byte-level header test still ran")
        let ours = directory + "/ours.npy"
        try NPY.write((0..<12).map { Float($0) / 4 }, shape: [3, 4], to: ours)
        try NPY.write([Int32(1), -2, 3, -4], shape: [2, 2], to: directory + "/ours_i4.npy")
        let script = """
            import numpy as np, sys
            a = np.load(sys.argv[1]); b = np.load(sys.argv[2])
            assert a.dtype == np.float32 and a.shape == (3, 4), (a.dtype, a.shape)
            assert (a == np.arange(12, dtype=np.float32).reshape(3, 4) / 4).all()
            assert b.dtype == np.int32 and b.tolist() == [[1, -2], [3, -4]], b
            np.save(sys.argv[3], np.arange(6, dtype=np.float64).reshape(1, 2, 3) * 1.5)
            np.save(sys.argv[4], np.array([[0, 1], [1, 0]], dtype=np.uint8))
            print("ok")
            """
        let theirs = directory + "/theirs.npy", theirsU8 = directory + "/theirs_u8.npy"
        let result = try TestProcess.run("/usr/bin/env", ["python3", "-c", script, ours, directory + "/ours_i4.npy", theirs, theirsU8])
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertEqual(result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines), "ok")
        let back = try NPY.read(theirs)
        XCTAssertEqual(back.type, .float64)
        XCTAssertEqual(back.shape, [1, 2, 3])
        XCTAssertEqual(try back.values(as: Double.self), [0, 1.5, 3, 4.5, 6, 7.5])
        XCTAssertEqual(try NPY.read(theirsU8).values(as: UInt8.self), [0, 1, 1, 0])
    }
}
