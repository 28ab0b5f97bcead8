import Formats
import Foundation
import TestSupport
import XCTest

/// `sccam cluster` on the golden features, as a user runs it.
final class ClusterCommandTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var arguments: [String] = []

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory(prefix: "sccam-cluster")
        let ids = (0..<800).map { String(format: "2012_%06d", $0) }
        try AtomicFile.write(ids.joined(separator: "\n") + "\n", to: temporary.path + "/images.txt")
        arguments = ["cluster", "--features", "\(KMeansGoldenTests.directory)/features.npy", "--images", temporary.path + "/images.txt",
                     "--labels", "\(KMeansGoldenTests.directory)/labels20.npy", "--k", "10", "--n-init", "3"]
    }

    override func tearDown() { temporary.remove() }

    private func outputs(_ folder: String) throws -> (tsv: String, npy: [Int32], report: [String: Any]) {
        let tsv = try String(contentsOfFile: "\(folder)/R1_subcategories.tsv", encoding: .utf8)
        let npy: [Int32] = try NPY.read("\(folder)/R1_subcategories.npy").values()
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(folder)/R1_report.json"))) as! [String: Any]
        return (tsv, npy, report)
    }

    func testOneRankAndTwoRanksGiveTheSameLabels() throws {
        let single = try TestProcess.sccam(arguments + ["--out", temporary.path + "/one"])
        XCTAssertEqual(single.status, 0, "\(single)")
        let one = try outputs(temporary.path + "/one")
        for strategy in ["points", "classes"] {
            let folder = temporary.path + "/two-\(strategy)"
            let result = try TestProcess.mpirun(ranks: 2, arguments + ["--out", folder, "--strategy", strategy])
            XCTAssertEqual(result.status, 0, "\(result)")
            let two = try outputs(folder)
            XCTAssertEqual(two.tsv, one.tsv, strategy)
            XCTAssertEqual(two.npy, one.npy, strategy)
        }
        // Every image has one bit per class it has; rows follow the tsv.
        let labels = try NPY.read("\(KMeansGoldenTests.directory)/labels20.npy").floatValues()
        let rows = one.tsv.split(separator: "\n").dropFirst()
        XCTAssertEqual(rows.count, 800)
        XCTAssertEqual(one.npy.count, 800 * 200)
        XCTAssertEqual(one.npy.reduce(0, +), Int32(labels.reduce(0, +)), "one sub-category bit per positive label")
        let inertia = try XCTUnwrap(one.report["inertia"] as? [Any])
        XCTAssertEqual(inertia.count, 20)
    }

    func testBadInputsAreRefusedOrHandled() throws {
        // Feature rows and image list disagree.
        try AtomicFile.write((0..<799).map { "x\($0)" }.joined(separator: "\n"), to: temporary.path + "/short.txt")
        var bad = arguments
        bad[4] = temporary.path + "/short.txt"
        let mismatch = try TestProcess.sccam(bad + ["--out", temporary.path + "/bad"])
        XCTAssertEqual(mismatch.status, 1)
        XCTAssertTrue(mismatch.standardError.contains("800 feature rows"), mismatch.standardError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary.path + "/bad/R1_subcategories.npy"))

        // NaN features.
        var features: [Float] = try NPY.read("\(KMeansGoldenTests.directory)/features.npy").values()
        features[48 * 7 + 3] = .nan
        try NPY.write(features, shape: [800, 48], to: temporary.path + "/nan.npy")
        bad = arguments
        bad[2] = temporary.path + "/nan.npy"
        let nan = try TestProcess.sccam(bad + ["--out", temporary.path + "/bad"])
        XCTAssertEqual(nan.status, 1)
        XCTAssertTrue(nan.standardError.contains("row 7") && nan.standardError.contains("NaN"), nan.standardError)

        // A class with fewer images than k: handled, with a warning.
        let small = try TestProcess.sccam(arguments.map { $0 == "10" ? "30" : $0 } + ["--out", temporary.path + "/small"])
        XCTAssertEqual(small.status, 0, "\(small)")
        XCTAssertTrue(small.standardError.contains("fewer than k = 30"), small.standardError)
    }
}
