import Foundation
import Formats
import XCTest

/// COCO holds greyscale JPEGs: they decode as RGB with the grey in every channel,
/// as the reference loaders (PIL's convert("RGB")) give them.
final class GreyscaleJPEGTests: XCTestCase {
    /// An 8 x 6 greyscale JPEG written by PIL (quality 95), and PIL's decoded values.
    static let jpeg = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsKDAkKCgr/wAALCAAGAAgBAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/AO6+En/BuJ8Af3X7/S+3/Lu3/wATX//Z"
    static let pil: [UInt8] = [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 100, 105, 110, 115, 119, 125, 130, 134, 140, 144, 149, 155, 160, 165, 170, 175, 180, 185, 190, 195, 200, 205, 210, 215, 220, 225, 230, 235]

    func testAGreyscaleJPEGDecodesToRGBWithEqualChannels() throws {
        let bytes = try XCTUnwrap(Data(base64Encoded: Self.jpeg))
        let image = try JPEG.decode(Array(bytes), path: "grey.jpg")
        XCTAssertEqual(image.width, 8)
        XCTAssertEqual(image.height, 6)
        for i in 0..<(8 * 6) {
            XCTAssertEqual(image.pixels[3 * i], image.pixels[3 * i + 1], "pixel \(i): R = G")
            XCTAssertEqual(image.pixels[3 * i], image.pixels[3 * i + 2], "pixel \(i): R = B")
        }
        XCTAssertEqual((0..<48).map { image.pixels[3 * $0] }, Self.pil, "PIL's grey values")
    }
}
