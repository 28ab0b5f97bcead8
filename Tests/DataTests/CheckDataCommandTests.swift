import Formats
import Foundation
import TestSupport
import XCTest

/// `sccam check-data` on a generated VOC folder: what a user sees.
final class CheckDataCommandTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var voc: TinyVOC!

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory(prefix: "sccam-check")
        voc = try TinyVOC.make(in: temporary.path)
    }

    override func tearDown() { temporary.remove() }

    func testCleanFolderReportsCountsAndWritesLabels() throws {
        let labels = temporary.path + "/work/labels.tsv"
        let result = try TestProcess.sccam(["check-data", "--voc-root", voc.root, "--list", "train", "--masks", "--labels", labels])
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.standardOutput.contains("4 images, 7 positive labels"), result.standardOutput)
        XCTAssertTrue(result.standardOutput.contains("1 with 1, 3 with 2"), result.standardOutput)
        XCTAssertTrue(result.standardOutput.contains("decoded 4 image(s), checked 4 mask(s)"), result.standardOutput)
        XCTAssertTrue(result.standardError.contains("2008_000008"), "the mask fallback is warned about: \(result.standardError)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: labels))
    }

    func testUnreadableImageStopsOrIsSkippedAndCounted() throws {
        let path = "\(voc.root)/JPEGImages/2010_000005.jpg"
        let bytes = try AtomicFile.read(path)
        try AtomicFile.write(Array(bytes.prefix(bytes.count / 2)), to: path)
        let strict = try TestProcess.sccam(["check-data", "--voc-root", voc.root, "--list", "train", "--decode"])
        XCTAssertEqual(strict.status, 1, "\(strict)")
        XCTAssertTrue(strict.standardError.contains(path), strict.standardError)
        let lenient = try TestProcess.sccam(["check-data", "--voc-root", voc.root, "--list", "train", "--decode", "--skip-unreadable"])
        XCTAssertEqual(lenient.status, 0, "\(lenient)")
        XCTAssertTrue(lenient.standardOutput.contains("decoded 3 image(s)"), lenient.standardOutput)
        XCTAssertTrue(lenient.standardOutput.contains("skipped 1 unreadable image(s): 2010_000005"), lenient.standardOutput)
    }

    func testListNamingAnUnknownImageNamesTheLine() throws {
        let list = temporary.path + "/mine.txt"
        try AtomicFile.write("2007_000032\n2007_999999\n", to: list)
        let result = try TestProcess.sccam(["check-data", "--voc-root", voc.root, "--list", list])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.standardError.contains("mine.txt:2"), result.standardError)
    }

    func testTwoRanksSplitTheWorkAndAgree() throws {
        let result = try TestProcess.mpirun(ranks: 2, ["check-data", "--voc-root", voc.root, "--list", "train", "--masks"])
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.standardOutput.contains("decoded 4 image(s), checked 4 mask(s)"), result.standardOutput)
        XCTAssertEqual(result.standardOutput.components(separatedBy: "positive labels").count - 1, 1, "rank 0 alone prints")
    }
}
