import Data
import Foundation
import TestSupport
import XCTest

/// The text readers of outside files against generated malformed input (see
/// `Fuzzer`): VOC annotation XML, image lists and the image-label cache.
final class TextFuzzTests: XCTestCase {
    private func fuzz(_ reader: String, seeds: [String], hostile: [String], read: (String) throws -> Void) {
        let report = Fuzzer.run(reader, seeds: seeds.map { Array($0.utf8) }, hostile: hostile.map { Array($0.utf8) }) { bytes in
            try read(String(decoding: bytes, as: UTF8.self))
        }
        print(report)
        XCTAssertEqual(report.cases, Fuzzer.casesPerReader)
        XCTAssertLessThan(report.slowestSeconds, 2, "\(reader): no case may take long (a hang)")
        XCTAssertLessThan(report.peakGrowthBytes, 512 << 20, "\(reader): allocations stay bounded")
    }

    func testVOCAnnotationXML() {
        let seed = """
            <annotation>
              <filename>2007_000032.jpg</filename>
              <object><name>aeroplane</name><difficult>0</difficult><part><name>head</name></part></object>
              <object><name> person </name><truncated>1</truncated></object>
            </annotation>

            """
        XCTAssertEqual(ImageLabels.classes(inAnnotation: seed), [0, 14])
        let hostile = [String(repeating: "<name>", count: 100_000), String(repeating: "<name>cat</name>", count: 50_000),
                       "<name>" + String(repeating: "x", count: 1_000_000), String(repeating: "</name><name>", count: 50_000)]
        fuzz("VOC XML", seeds: [seed], hostile: hostile) { xml in
            let classes = ImageLabels.classes(inAnnotation: xml)
            XCTAssertTrue(classes.allSatisfy { (0..<20).contains($0) })
        }
    }

    func testImageLists() {
        let seeds = ["2007_000032\n2007_000039\n# a comment\n\n2008_000002\n",
                     "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\n/JPEGImages/2007_000039.jpg /SegmentationClassAug/2007_000039.png\n"]
        XCTAssertEqual(try ImageList(parsing: seeds[1], source: "l.txt").ids, ["2007_000032", "2007_000039"])
        let hostile = ["a/b/c\n", String(repeating: "\n", count: 1_000_000), String(repeating: " x", count: 500_000), "/.jpg\n"]
        var rejected = 0
        fuzz("image list", seeds: seeds, hostile: hostile) { text in
            do {
                let list = try ImageList(parsing: text, source: "fuzz.txt")
                XCTAssertTrue(list.ids.allSatisfy { !$0.isEmpty && !$0.contains("/") })
            } catch {
                rejected += 1
                XCTAssertTrue("\(error)".contains("fuzz.txt:"), "the error names the file and line: \(error)")
                throw error
            }
        }
        XCTAssertGreaterThan(rejected, 0)
    }

    func testImageLabelCache() {
        let seed = "# sccam image-level labels\n2007_000032\taeroplane,person\tannotation\n2008_000008\thorse\tmask\n"
        XCTAssertEqual(try ImageLabels.parse(seed, path: "c.tsv").classes["2007_000032"], [0, 14])
        let hostile = [String(repeating: "\t", count: 100_000), "x\t" + String(repeating: ",", count: 1_000_000) + "\tmask\n",
                       String(repeating: "a\tcat\tmask\n", count: 100_000)]
        fuzz("image-label cache", seeds: [seed], hostile: hostile) { text in
            _ = try ImageLabels.parse(text, path: "fuzz.tsv")
        }
    }
}
