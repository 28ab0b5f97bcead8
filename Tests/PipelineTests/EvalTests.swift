import Distributed
import Formats
import Foundation
import Pipeline
import TestSupport
import XCTest

/// The metric against shared/golden/metric (copied under Golden/metric).
final class EvalTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/metric").path

    struct Expected: Decodable {
        let confusion_rows_are_ground_truth: [[Int64]]
        let pixel_accuracy: Double
        let class_iou: [Double?]
        let mean_iou_over_classes_present_in_ground_truth: Double
    }

    func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: "\(Self.directory)/expected.json")))
    }

    func testMetricEqualsTheGoldenExactly() throws {
        let (matrix, images) = try Evaluation.run(predictions: "\(Self.directory)/pred", groundTruth: "\(Self.directory)/gt",
                                                  list: nil, communicator: SingleProcessCommunicator())
        let golden = try expected()
        XCTAssertEqual(images, 5)
        XCTAssertEqual(matrix.jsonReport.confusion, golden.confusion_rows_are_ground_truth)
        for (ours, theirs) in zip(matrix.classIoU, golden.class_iou) {
            XCTAssertEqual(ours == nil, theirs == nil)
            if let ours, let theirs { XCTAssertEqual(ours, theirs, accuracy: 1e-6) }
        }
        XCTAssertEqual(try XCTUnwrap(matrix.meanIoU), golden.mean_iou_over_classes_present_in_ground_truth, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(matrix.pixelAccuracy), golden.pixel_accuracy, accuracy: 1e-12)
    }

    func testEvalCommandOnOneAndTwoRanksWritesTheSameJSON() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-eval")
        defer { temporary.remove() }
        let arguments = ["eval", "--pred", "\(Self.directory)/pred", "--gt", "\(Self.directory)/gt"]
        let one = try TestProcess.sccam(arguments + ["--json", temporary.path + "/one.json"])
        XCTAssertEqual(one.status, 0, "\(one)")
        XCTAssertTrue(one.standardOutput.contains("mIoU 0.5386 over 9 classes"), one.standardOutput)
        XCTAssertTrue(one.standardOutput.contains("class 15 person       IoU 0.593"), one.standardOutput)
        let two = try TestProcess.mpirun(ranks: 2, arguments + ["--json", temporary.path + "/two.json"])
        XCTAssertEqual(two.status, 0, "\(two)")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: temporary.path + "/one.json")),
                       try Data(contentsOf: URL(fileURLWithPath: temporary.path + "/two.json")))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: temporary.path + "/one.json"))) as! [String: Any]
        XCTAssertEqual(json["miou"] as! Double, try expected().mean_iou_over_classes_present_in_ground_truth, accuracy: 1e-12)
        XCTAssertEqual((json["class_iou"] as! [Any]).count, 21)
    }

    func testMismatchedSizesNameTheFile() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-eval")
        defer { temporary.remove() }
        try FileManager.default.createDirectory(atPath: temporary.path + "/pred", withIntermediateDirectories: true)
        let gt = try Formats.PNG.readIndexed("\(Self.directory)/gt/img0.png")
        try Formats.PNG.write(Formats.IndexedImage(width: gt.width + 1, height: gt.height, indices: [UInt8](repeating: 0, count: (gt.width + 1) * gt.height)),
                              to: temporary.path + "/pred/img0.png")
        let result = try TestProcess.sccam(["eval", "--pred", temporary.path + "/pred", "--gt", "\(Self.directory)/gt"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.standardError.contains("pred/img0.png"), result.standardError)
    }
}
