import Formats
import Foundation
import TestSupport
import XCTest

/// `report.html` after a tiny demo: self-contained, every section there, and
/// rendered by a real browser into a picture that is not blank.
final class RunReportTests: XCTestCase {
    func testTheDemoWritesASelfContainedReportThatABrowserRenders() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-report")
        defer { temporary.remove() }
        let work = temporary.path + "/demo"
        let demo = try TestProcess.sccam(["demo", "--work", work] + PipelineCommandTests.tinyDemo, timeout: 900)
        XCTAssertEqual(demo.status, 0, "\(demo)")
        XCTAssertTrue(demo.standardOutput.contains("report: \(work)/report.html"), demo.standardOutput)
        let html = try String(contentsOfFile: "\(work)/report.html", encoding: .utf8)
        for section in ["<h2>Summary</h2>", "<h2>IoU per class</h2>", "<h2>Stages</h2>", "<h2>Training loss</h2>",
                        "<h2>Training images</h2>", "<h2>Validation images</h2>"] {
            XCTAssertTrue(html.contains(section), "\(section) missing")
        }
        // Nothing to fetch: no links out, every picture embedded.
        XCTAssertFalse(html.contains("http://") || html.contains("https://"), "the report refers to the network")
        XCTAssertFalse(html.contains("src=\"/") || html.contains("src=\"file:"), "the report refers to local files")
        XCTAssertFalse(html.contains("missing:"), "a picture the run wrote was not found")
        let pictures = html.components(separatedBy: "src=\"data:image/").count - 1
        // 6 training rows x 5 columns and 4 validation rows (the tiny demo has 4 val images) x 4 columns.
        XCTAssertGreaterThanOrEqual(pictures, 6 * 5, "\(pictures) embedded pictures")
        // One loss curve per training: the classifier's 4 rounds, AffinityNet and DeepLab.
        XCTAssertEqual(html.components(separatedBy: "<polyline").count - 1, 6)
        for name in ["train R0", "train R3", "train-aff", "train-seg", "pseudo-labels", "segmentation + CRF", "background", "CAMs R2"] {
            XCTAssertTrue(html.contains(name), "\(name) missing")
        }

        // The command writes it again; a folder without a run is refused by name.
        try FileManager.default.removeItem(atPath: "\(work)/report.html")
        let again = try TestProcess.sccam(["report", work, "--samples", "2"])
        XCTAssertEqual(again.status, 0, "\(again)")
        let shorter = try String(contentsOfFile: "\(work)/report.html", encoding: .utf8)
        XCTAssertLessThan(shorter.components(separatedBy: "<tr><td>2099_").count, html.components(separatedBy: "<tr><td>2099_").count)
        let empty = try TestProcess.sccam(["report", temporary.path])
        XCTAssertEqual(empty.status, 1, "\(empty)")
        XCTAssertTrue(empty.standardError.contains("run.json: does not exist"), empty.standardError)

        try renderInBrowser("\(work)/report.html", screenshot: temporary.path + "/report.png")
    }

    /// Debian's headless Chromium takes a screenshot; it must show a page, not a blank.
    private func renderInBrowser(_ page: String, screenshot: String) throws {
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no Chromium here (.ci/install-packages installs Debian's chromium): the report was checked as text only")
        }
        let result = try TestProcess.run(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                                    "--screenshot=\(screenshot)", "--window-size=1280,2400", "file://\(page)"], timeout: 120)
        XCTAssertEqual(result.status, 0, "\(result)")
        let image = try PNG.readRGB(screenshot)
        XCTAssertEqual(image.width, 1280)
        var colours = Set<UInt32>(), inked = 0
        for pixel in 0..<(image.width * image.height) {
            let r = image.pixels[3 * pixel], g = image.pixels[3 * pixel + 1], b = image.pixels[3 * pixel + 2]
            colours.insert(UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b))
            if Int(r) + Int(g) + Int(b) < 600 { inked += 1 }
        }
        // Text, tables, charts and pictures: many colours and a good share of non-white pixels.
        XCTAssertGreaterThan(colours.count, 500, "the screenshot has \(colours.count) colours")
        XCTAssertGreaterThan(Double(inked) / Double(image.width * image.height), 0.03, "the screenshot is nearly blank")
    }
}
