import Foundation
import Pipeline
import TestSupport
import XCTest

/// The frame every stage shares: the work folder's names, typed results in
/// run.json (also those an earlier version wrote), and a stage run in-process.
final class StageAPITests: XCTestCase {
    /// run.json records outputs by these names: a rerun of an older work folder must find them.
    func testTheWorkLayoutNamesWhatRunsHaveAlwaysWritten() {
        let layout = WorkLayout("/w")
        XCTAssertEqual(layout.relative(layout.classifierWeights(round: 0, epoch: 14)), "weights/R0_ep14.safetensors")
        XCTAssertEqual(layout.relative(layout.affinityWeights(epoch: 7)), "weights/AFF_ep7.safetensors")
        XCTAssertEqual(layout.relative(layout.segmentationWeights), "weights/SEG_final.safetensors")
        XCTAssertEqual(layout.features(round: 2).all.map(layout.relative),
                       ["features/R2_features.npy", "features/R2_images.txt", "features/R2_labels.npy"])
        XCTAssertEqual(layout.subcategories(round: 1).all.map(layout.relative),
                       ["labels/R1_subcategories.tsv", "labels/R1_subcategories.npy", "labels/R1_report.json"])
        XCTAssertEqual(layout.relative(layout.inference(round: 3).root), "infer/R3")
        XCTAssertEqual(layout.inference(round: 3).cams.classes("a"), "/w/infer/R3/cams/a.classes.npy")
        XCTAssertEqual(layout.relative(layout.pseudoLabels.scores), "refine/scores.json")
        XCTAssertEqual(layout.segmentation(crf: true).colour.png("b"), "/w/segment_crf_color/b.png")
        XCTAssertNil(layout.segmentation(crf: true).overlays)
        XCTAssertEqual(layout.relative("/elsewhere/x"), "/elsewhere/x", "a path outside the work folder stays as it is")
    }

    /// An evaluation's result as an earlier version recorded it (numbers only) reads back typed.
    func testAResultRecordedByAnEarlierVersionReadsBackTyped() throws {
        let old = try JSONDecoder().decode(JSONValue.self, from: Data("""
            {"miou": 0.5, "threshold": 0.15, "best_miou": 0.6, "best_threshold": 0.3, "images": 10, "crf_miou": 0.55}
            """.utf8))
        let result = try old.decoded(as: EvaluateStage.Result.self)
        XCTAssertEqual(result.miou, 0.5)
        XCTAssertEqual(result.bestMiou, 0.6)
        XCTAssertEqual(try XCTUnwrap(result.bestThreshold), 0.3, accuracy: 1e-7)
        XCTAssertEqual(result.crfMiou, 0.55)
        XCTAssertEqual(result.images, 10)
        XCTAssertNil(result.classIoU)
    }

    /// A training result with NaN losses (no step run) survives run.json's JSON.
    func testNonFiniteNumbersSurviveTheRecord() throws {
        struct Losses: Codable { let steps: Int, firstLoss: Double, lastLoss: Double }
        let recorded = try JSONValue(encoding: Losses(steps: 0, firstLoss: .nan, lastLoss: -.infinity))
        let data = try JSONEncoder().encode(recorded)
        let back = try JSONDecoder().decode(JSONValue.self, from: data).decoded(as: Losses.self)
        XCTAssertTrue(back.firstLoss.isNaN)
        XCTAssertEqual(back.lastLoss, -.infinity)
        XCTAssertEqual(back.steps, 0)
    }

    /// A stage runs in-process from its settings and a context, as the commands and the pipeline run it.
    func testEvaluateStageRunsInProcessAndWritesItsScores() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-stage-api")
        defer { temporary.remove() }
        let truth = ImageFolder(temporary.path + "/gt"), prediction = ImageFolder(temporary.path + "/pred")
        try PNG.write(IndexedImage(width: 2, height: 2, indices: [0, 1, 1, 255]), to: truth.png("a"))
        try PNG.write(IndexedImage(width: 2, height: 2, indices: [0, 1, 0, 3]), to: prediction.png("a"))
        var settings = EvaluateStage.Settings(groundTruth: truth.path)
        (settings.predictions, settings.scores) = (prediction.path, temporary.path + "/scores.json")
        let context = StageContext(communicator: SingleProcessCommunicator(), layout: WorkLayout(temporary.path), log: { _ in },
                                   warn: { _ in })
        let result = try EvaluateStage.run(settings, in: context)
        XCTAssertEqual(result.images, 1)
        // Background: 1 of 2 predicted pixels right (IoU 1/2); class 1: 1 of 2 (IoU 1/2); 255 ignored.
        XCTAssertEqual(try XCTUnwrap(result.miou), 0.5, accuracy: 1e-12)
        let written = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: temporary.path + "/scores.json")))
        XCTAssertEqual((written as? [String: Any])?["miou"] as? Double, result.miou)
    }
}
