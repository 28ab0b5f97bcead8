import Formats
import Foundation
import TestSupport
import XCTest

final class ImageCodecTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var directory: String { temporary.path }

    override func setUpWithError() throws { temporary = try TemporaryDirectory(prefix: "sccam-formats") }
    override func tearDown() { temporary.remove() }

    /// An image whose every pixel differs from its neighbours in a known way.
    private func testPattern(width: Int, height: Int) -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let i = 3 * (y * width + x)
                pixels[i] = UInt8((x * 255) / max(1, width - 1))
                pixels[i + 1] = UInt8((y * 255) / max(1, height - 1))
                pixels[i + 2] = UInt8((x * 7 + y * 13) % 256)
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    func testRGBPNGRoundTripIsExact() throws {
        let image = testPattern(width: 37, height: 23)
        let path = directory + "/rgb.png"
        try PNG.write(image, to: path)
        let back = try PNG.readRGB(path)
        XCTAssertEqual(back.width, 37)
        XCTAssertEqual(back.height, 23)
        XCTAssertEqual(back.pixels, image.pixels)
        XCTAssertEqual(Array(back.pixels[(3 * (5 * 37 + 36))..<(3 * (5 * 37 + 36) + 3)]), [255, (5 * 255) / 22, (36 * 7 + 5 * 13) % 256].map(UInt8.init))
    }

    func testPalettePNGKeepsIndicesAndVOCColours() throws {
        let width = 16, height = 3
        var indices = [UInt8](repeating: 0, count: width * height)
        for i in 0..<indices.count { indices[i] = UInt8(i % 21) }
        indices[width + 4] = 255  // the VOC "ignore" value
        let mask = IndexedImage(width: width, height: height, indices: indices, palette: VOCPalette.colors)
        let path = directory + "/mask.png"
        try PNG.write(mask, to: path)

        let back = try PNG.readIndexed(path)
        XCTAssertEqual(back.indices, indices)
        XCTAssertEqual(back.palette?.count, 256 * 3)
        XCTAssertEqual(back.palette, VOCPalette.colors)

        // As colours, the same file shows the VOC palette's colours.
        let rgb = try PNG.readRGB(path)
        let person = 15, ignore = width + 4
        XCTAssertEqual(Array(rgb.pixels[(3 * person)..<(3 * person + 3)]), [192, 128, 128])
        XCTAssertEqual(Array(rgb.pixels[(3 * ignore)..<(3 * ignore + 3)]), [224, 224, 192])
    }

    func testGreyPNGIsReadAsRawClassIDsNotLuminance() throws {
        let indices = (0..<256).map { UInt8($0) }
        let path = directory + "/aug.png"
        try PNG.write(IndexedImage(width: 32, height: 8, indices: indices), to: path)
        let back = try PNG.readIndexed(path)
        XCTAssertNil(back.palette)
        XCTAssertEqual(back.indices, indices)
    }

    func testTrueColourPNGIsRejectedAsAMask() throws {
        let path = directory + "/photo.png"
        try PNG.write(testPattern(width: 4, height: 4), to: path)
        XCTAssertThrowsError(try PNG.readIndexed(path)) { error in
            XCTAssertTrue("\(error)".contains(path), "\(error)")
            XCTAssertTrue("\(error)".contains("true-colour"), "\(error)")
        }
    }

    func testVOCPaletteMatchesTheSpecTable() {
        let expected: [Int: [UInt8]] = [
            0: [0, 0, 0], 1: [128, 0, 0], 2: [0, 128, 0], 7: [128, 128, 128], 8: [64, 0, 0],
            12: [64, 0, 128], 15: [192, 128, 128], 20: [0, 64, 128], 255: [224, 224, 192],
        ]
        for (index, rgb) in expected {
            XCTAssertEqual(Array(VOCPalette.colors[(3 * index)..<(3 * index + 3)]), rgb, "palette entry \(index)")
        }
    }

    func testJPEGWrittenByUsDecodesCloseToTheOriginal() throws {
        // Smooth content, as JPEG is lossy: the decoded pixels stay close.
        let width = 64, height = 48
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let i = 3 * (y * width + x)
                pixels[i] = UInt8(x * 4)
                pixels[i + 1] = UInt8(y * 5)
                pixels[i + 2] = 128
            }
        }
        let image = RGBImage(width: width, height: height, pixels: pixels)
        let path = directory + "/image.jpg"
        try JPEG.write(image, to: path, quality: 95)
        let bytes = try AtomicFile.read(path)
        XCTAssertEqual(Array(bytes.prefix(3)), [0xFF, 0xD8, 0xFF], "JPEG SOI marker")
        let back = try JPEG.read(path)
        XCTAssertEqual(back.width, width)
        XCTAssertEqual(back.height, height)
        let differences = zip(back.pixels, pixels).map { abs(Int($0) - Int($1)) }
        XCTAssertLessThanOrEqual(differences.max() ?? 0, 8)
        XCTAssertLessThan(Double(differences.reduce(0, +)) / Double(differences.count), 1.5)
        // Spot checks: a corner and the middle.
        XCTAssertEqual(Int(back.pixels[0]), 0, accuracy: 4)
        let middle = 3 * (24 * width + 32)
        XCTAssertEqual(Int(back.pixels[middle]), 128, accuracy: 4)
        XCTAssertEqual(Int(back.pixels[middle + 1]), 120, accuracy: 4)
        XCTAssertEqual(Int(back.pixels[middle + 2]), 128, accuracy: 4)
    }

    func testTruncatedPNGGivesAnErrorNamingTheFile() throws {
        let bytes = try PNG.encode(testPattern(width: 40, height: 40))
        let path = directory + "/truncated.png"
        try AtomicFile.write(Array(bytes.prefix(bytes.count / 2)), to: path)
        XCTAssertThrowsError(try PNG.readRGB(path)) { error in
            XCTAssertTrue(error is FormatError)
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
        XCTAssertThrowsError(try PNG.readIndexed(path))
    }

    func testTruncatedJPEGGivesAnErrorNamingTheFile() throws {
        let bytes = try JPEG.encode(testPattern(width: 64, height: 64))
        let path = directory + "/truncated.jpg"
        try AtomicFile.write(Array(bytes.prefix(bytes.count / 2)), to: path)
        XCTAssertThrowsError(try JPEG.read(path)) { error in
            XCTAssertTrue(error is FormatError)
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
    }

    func testGarbageAndMissingFilesGiveErrors() throws {
        let path = directory + "/garbage.jpg"
        try AtomicFile.write(Array("this is not an image".utf8), to: path)
        XCTAssertThrowsError(try JPEG.read(path)) { XCTAssertTrue("\($0)".contains(path)) }
        XCTAssertThrowsError(try PNG.readRGB(path)) { XCTAssertTrue("\($0)".contains(path)) }
        XCTAssertThrowsError(try JPEG.read(directory + "/missing.jpg")) {
            XCTAssertTrue("\($0)".contains("missing.jpg") && "\($0)".contains("no such file"), "\($0)")
        }
    }
}

final class AtomicFileTests: XCTestCase {
    func testWriteReplacesAndLeavesNoTemporaryFiles() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-atomic")
        defer { temporary.remove() }
        let directory = temporary.path
        let path = directory + "/nested/out.txt"
        try AtomicFile.write("first", to: path)
        try AtomicFile.write("second", to: path)
        XCTAssertEqual(String(decoding: try AtomicFile.read(path), as: UTF8.self), "second")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory + "/nested"), ["out.txt"])
    }

    func testFailedWriteKeepsTheOldFile() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-atomic")
        defer { temporary.remove() }
        let directory = temporary.path
        let path = directory + "/checkpoint.bin"
        try AtomicFile.write([1, 2, 3], to: path)
        struct Interrupted: Error {}
        XCTAssertThrowsError(try AtomicFile.write(to: path) { fd in
            try [9, 9].withUnsafeBytes { try AtomicFile.writeAll(fd, UnsafeRawBufferPointer($0), path: path) }
            throw Interrupted()
        })
        XCTAssertEqual(try AtomicFile.read(path), [1, 2, 3])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["checkpoint.bin"])
    }
}
