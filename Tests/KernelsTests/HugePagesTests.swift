import Foundation
import XCTest
@testable import Kernels

final class HugePagesTests: XCTestCase {
    /// A large buffer starts on a huge-page boundary, spans whole huge pages,
    /// and (on Linux with transparent huge pages) its mapping carries the
    /// kernel's "hg" flag: the advice reached the kernel before the first touch.
    func testLargeBufferIsAdvisedWholeHugePages() throws {
        let bytes = HugePages.thresholdBytes + 12_345
        let pointer = HugePages.allocate(byteCount: bytes)
        defer { pointer.deallocate() }
        XCTAssertEqual(Int(bitPattern: pointer) % HugePages.pageBytes, 0)
        // The rounded-up tail belongs to the buffer: writing it must not fault.
        let rounded = (bytes + HugePages.pageBytes - 1) / HugePages.pageBytes * HugePages.pageBytes
        pointer.initializeMemory(as: UInt8.self, repeating: 7, count: rounded)
        XCTAssertEqual(pointer.load(fromByteOffset: rounded - 1, as: UInt8.self), 7)

        #if os(Linux)
        guard let mode = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8),
              !mode.contains("[never]") else { throw XCTSkip("transparent huge pages are off on this kernel") }
        let flags = try mappingFlags(containing: Int(bitPattern: pointer))
        XCTAssertTrue(flags.contains("hg"), "VmFlags of the buffer's mapping: \(flags)")
        #endif
    }

    func testSmallBufferKeepsMalloc() {
        let pointer = HugePages.allocate(byteCount: 1000, alignment: 64)
        defer { pointer.deallocate() }
        XCTAssertEqual(Int(bitPattern: pointer) % 64, 0)
        pointer.initializeMemory(as: UInt8.self, repeating: 1, count: 1000)
    }

    func testZeroedFloatsAreZero() {
        for count in [0, 5, HugePages.thresholdBytes / 4 + 3] {
            let pointer = HugePages.zeroed(count, as: Float.self)
            defer { pointer.deallocate() }
            XCTAssertTrue(UnsafeBufferPointer(start: pointer, count: max(1, count)).allSatisfy { $0 == 0 }, "count \(count)")
        }
    }

    /// The words of VmFlags for the mapping of /proc/self/smaps that holds `address`.
    private func mappingFlags(containing address: Int) throws -> [Substring] {
        // Read to the end: /proc files report a size of zero.
        let file = try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/self/smaps"))
        defer { try? file.close() }
        let smaps = String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
        var inside = false
        for line in smaps.split(separator: "\n") {
            let words = line.split(separator: " ")
            if let range = words.first, range.contains("-"), !range.hasSuffix(":") {
                let bounds = range.split(separator: "-").compactMap { Int($0, radix: 16) }
                inside = bounds.count == 2 && bounds[0] <= address && address < bounds[1]
            } else if inside, words.first == "VmFlags:" {
                return Array(words.dropFirst())
            }
        }
        XCTFail("no mapping holds \(String(address, radix: 16))")
        return []
    }
}
