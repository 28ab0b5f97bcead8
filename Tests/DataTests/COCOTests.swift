import Data
import Formats
import Foundation
import TestSupport
import XCTest

/// COCO's masks against pycocotools (`Golden/coco`, made by make_fixture.py):
/// 400 random polygons to the RLE string, and `sccam prepare-coco` to the
/// masks, lists and labels pycocotools' annToMask gives under both conventions.
final class COCOTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/coco").path
    static let split = "fixture2014"

    func testPolygonsRasteriseAsPycocotoolsDoes() throws {
        struct Case: Decodable { let polygon: [Double], height: Int, width: Int, string: String, area: Int }
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: URL(fileURLWithPath: Self.directory + "/polygons.json")))
        XCTAssertEqual(cases.count, 400)
        for (index, c) in cases.enumerated() {
            let rle = COCORLE.polygon(c.polygon, height: c.height, width: c.width)
            XCTAssertEqual(rle.compressedString, c.string, "polygon \(index): \(c.polygon) at \(c.height) x \(c.width)")
            XCTAssertEqual(rle.pixelCount, c.height * c.width, "polygon \(index)")
            XCTAssertEqual(rle.counts.enumerated().filter { $0.offset % 2 == 1 }.reduce(0) { $0 + Int($1.element) }, c.area)
            XCTAssertEqual(COCORLE.fromCompressed(Array(c.string.utf8), height: c.height, width: c.width), rle, "polygon \(index) string")
        }
    }

    /// The verification cases of coco-2014.md 5.5, by hand.
    func testTheSpecificationsWorkedExamples() {
        let triangle = COCORLE.polygon([0.5, 0.5, 4.2, 1.0, 1.0, 5.3], height: 6, width: 5)
        XCTAssertEqual(triangle.counts, [7, 4, 2, 2, 4, 1, 10])
        XCTAssertEqual(triangle.compressedString, "742N2O6")
        XCTAssertEqual(COCORLE(height: 4, width: 3, counts: [1, 2, 3, 4, 2]).compressedString, "1232O")
        XCTAssertEqual(COCORLE(height: 101, width: 1100, counts: [5, 40, 3, 1000, 2, 7, 100000, 10043]).compressedString, "5X13Pn0OoPOndQ3di9")
        XCTAssertEqual(COCORLE.fromCompressed(Array("5X13Pn0OoPOndQ3di9".utf8), height: 101, width: 1100)?.counts,
                       [5, 40, 3, 1000, 2, 7, 100000, 10043])
        XCTAssertNil(COCORLE.fromCompressed(Array("5X1 3".utf8), height: 1, width: 1), "a space is outside the alphabet")
    }

    private func fixtureRoot(_ temporary: TemporaryDirectory) throws -> String {
        let root = temporary.path + "/coco"
        try FileManager.default.createDirectory(atPath: root + "/annotations", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.directory + "/annotations/instances_\(Self.split).json",
                                         toPath: root + "/annotations/instances_\(Self.split).json")
        return root
    }

    private func assertMatchesPycocotools(_ root: String, convention: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = Self.directory + "/expected/" + convention
        let names = try FileManager.default.contentsOfDirectory(atPath: expected).filter { $0.hasSuffix(".png") }.sorted()
        let written = try FileManager.default.contentsOfDirectory(atPath: root + "/SegmentationClass/\(Self.split)").sorted()
        XCTAssertEqual(written, names, "the same images get a mask", file: file, line: line)
        for name in names {
            let ours = try PNG.readIndexed(root + "/SegmentationClass/\(Self.split)/" + name)
            let theirs = try PNG.readIndexed(expected + "/" + name)
            XCTAssertEqual(ours.width, theirs.width, name, file: file, line: line)
            XCTAssertEqual(ours.indices, theirs.indices, "\(convention) \(name)", file: file, line: line)
        }
        for suffix in [".txt", ".tsv"] {
            let folder = suffix == ".txt" ? "/ImageSets/" : "/ImageLabels/"
            XCTAssertEqual(try String(contentsOfFile: root + folder + Self.split + suffix, encoding: .utf8),
                           try String(contentsOfFile: Self.directory + "/expected/" + Self.split + suffix, encoding: .utf8),
                           "\(convention) \(suffix)", file: file, line: line)
        }
    }

    func testPrepareCOCOWritesPycocotoolsMasksListsAndLabelsInBothConventions() throws {
        for convention in ["coco2voc", "recam"] {
            let temporary = try TemporaryDirectory(prefix: "sccam-coco-\(convention)")
            defer { temporary.remove() }
            let root = try fixtureRoot(temporary)
            let result = try TestProcess.sccam(["prepare-coco", "--coco-root", root, "--split", Self.split, "--convention", convention])
            XCTAssertEqual(result.status, 0, "\(result)")
            try assertMatchesPycocotools(root, convention: convention)
            let classes = try String(contentsOfFile: root + "/ImageLabels/classes.tsv", encoding: .utf8)
            XCTAssertEqual(classes, "1\t2\tbicycle\n2\t5\tairplane\n3\t17\tcat\n4\t44\tbottle\n5\t90\ttoothbrush\n")
        }
    }

    func testTwoRanksWriteTheSameFilesAndARerunResumes() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-coco-ranks")
        defer { temporary.remove() }
        let root = try fixtureRoot(temporary)
        let two = try TestProcess.mpirun(ranks: 2, ["prepare-coco", "--coco-root", root, "--split", Self.split])
        XCTAssertEqual(two.status, 0, "\(two)")
        try assertMatchesPycocotools(root, convention: "coco2voc")
        // A killed run leaves some masks: the rerun writes only the missing ones.
        let missing = root + "/SegmentationClass/\(Self.split)/COCO_\(Self.split)_000000000025.png"
        try FileManager.default.removeItem(atPath: missing)
        let rerun = try TestProcess.sccam(["prepare-coco", "--coco-root", root, "--split", Self.split])
        XCTAssertEqual(rerun.status, 0, "\(rerun)")
        XCTAssertTrue(rerun.standardOutput.contains("wrote 1 mask(s), 3 already done"), rerun.standardOutput)
        try assertMatchesPycocotools(root, convention: "coco2voc")
    }

    /// Broken annotation files stop with a message naming the annotation and the fix, never a crash.
    func testBrokenAnnotationFilesAreNamed() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-coco-broken")
        defer { temporary.remove() }
        let root = temporary.path
        let path = root + "/annotations/instances_bad2014.json"
        let good = try String(contentsOfFile: Self.directory + "/annotations/instances_\(Self.split).json", encoding: .utf8)
        let cases: [(String, String)] = [
            (String(good.dropLast(5)), "the file ends"),
            (good.replacingOccurrences(of: "\"image_id\": 3,", with: "\"image_id\": 4,"), "refers to image id 4"),
            (good.replacingOccurrences(of: "\"width\": 17", with: "\"width\": -17"), "sizes must be 1 to 32768"),
            (good.replacingOccurrences(of: "\"counts\": [", with: "\"counts\": [7, "), "annotation id 900100284445"),
            (good.replacingOccurrences(of: "\"category_id\": 44", with: "\"category_id\": 45"), "category_id 45"),
            ("{\"images\": []}", "not a COCO instances file"),
        ]
        for (text, message) in cases {
            try FileManager.default.createDirectory(atPath: root + "/annotations", withIntermediateDirectories: true)
            try AtomicFile.write(text, to: path)
            let result = try TestProcess.sccam(["prepare-coco", "--coco-root", root, "--split", "bad2014"])
            XCTAssertEqual(result.status, 1, "\(message): \(result)")
            XCTAssertTrue(result.standardError.contains(message), "\(message): \(result.standardError)")
        }
    }

    func testTheAnnotationReaderAgainstMalformedInput() throws {
        let seed = try Array(Data(contentsOf: URL(fileURLWithPath: Self.directory + "/annotations/instances_\(Self.split).json")))
        let hostile = [String(repeating: "[", count: 100_000), "{\"images\": [" + String(repeating: "{\"id\": 1},", count: 50_000),
                       "{\"annotations\": [{\"segmentation\": {\"counts\": \"" + String(repeating: "o", count: 100_000) + "\"}}]}"]
        let report = Fuzzer.run("COCO instances JSON", seeds: [seed], hostile: hostile.map { Array($0.utf8) }) { bytes in
            let coco = try COCOAnnotations(data: Data(bytes), path: "fuzzed.json")
            for annotation in coco.annotations.prefix(20) { _ = try? coco.mask(of: annotation) }
        }
        print(report)
        XCTAssertEqual(report.cases, Fuzzer.casesPerReader)
        XCTAssertLessThan(report.slowestSeconds, 2, "no case may take long (a hang)")
        XCTAssertLessThan(report.peakGrowthBytes, 512 << 20, "allocations stay bounded")
    }
}
