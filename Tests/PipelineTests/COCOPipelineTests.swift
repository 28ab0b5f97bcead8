import Foundation
import Pipeline
import TestSupport
import XCTest

/// The COCO path end to end, without a download: `demo --dataset coco` writes
/// synthetic COCO-layout data (polygons, multi-polygon objects, a crowd RLE,
/// non-contiguous ids, images without annotations), prepares it with
/// prepare-coco and runs every stage on its classes.
final class COCOPipelineTests: XCTestCase {
    func testTheDemoRunsEveryStageOnACOCOLayoutDataset() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-coco-demo")
        defer { temporary.remove() }
        let work = temporary.path + "/work"
        let result = try TestProcess.sccam(["demo", "--dataset", "coco", "--work", work, "--images", "24"] + PipelineCommandTests.tinyDemo
                                           .filter { $0 != "16" && $0 != "--images" }, timeout: 900)
        XCTAssertEqual(result.status, 0, "\(result)")
        let output = result.standardOutput
        XCTAssertTrue(output.contains("demo dataset (COCO layout)"), output)
        XCTAssertTrue(output.contains("pipeline finished: 26 stage(s) run"), output)
        XCTAssertTrue(output.contains("pseudo-labels after the random walk: mIoU"), output)
        XCTAssertTrue(output.contains("segmentation network (DeepLab-v2) on val: mIoU"), output)
        let root = work + "/coco"
        // Four classes from COCO ids 1, 3, 5, 17: the heads, masks and metric have 4 (+ background).
        XCTAssertEqual(try String(contentsOfFile: root + "/ImageLabels/classes.tsv", encoding: .utf8),
                       "1\t1\tperson\n2\t3\tcar\n3\t5\tairplane\n4\t17\tcat\n")
        let (tensors, _) = try Safetensors.read(work + "/weights/R1_ep0.safetensors")
        XCTAssertEqual(tensors.first { $0.name == "fc8_20.weight" }?.shape.first, 4)
        XCTAssertEqual(tensors.first { $0.name == "fc8_200.weight" }?.shape.first, 8)
        let scores = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: work + "/segment/scores.json")))
        XCTAssertEqual(((scores as? [String: Any])?["class_iou"] as? [Any])?.count, 5)
        let listed = try String(contentsOfFile: root + "/ImageSets/train2014.txt", encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(listed.allSatisfy { $0.hasPrefix("COCO_train2014_") }, "\(listed)")
    }
}
