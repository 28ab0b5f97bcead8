import Network
import Pipeline
import XCTest

/// The demo's recipe lives in the library; these pin what it derives from the
/// image size and that it is a valid pipeline.
final class DemoRecipeTests: XCTestCase {
    func testTheRecipeIsValidAndScalesItsCropsWithTheImages() throws {
        for (side, classifierCrop, wholeImage) in [(96, 48, 96), (32, 16, 32), (100, 48, 96), (20, 16, 16)] {
            let settings = SCCAMPipeline.Settings.demo(vocRoot: "voc", imageSize: side, widthDivisor: 16)
            XCTAssertNoThrow(try settings.validate(), "image side \(side)")
            XCTAssertEqual(settings.crop, classifierCrop, "classifier crop for \(side)")
            XCTAssertEqual(settings.baselineCrop, classifierCrop)
            XCTAssertEqual(settings.longSide, [classifierCrop, side])
            XCTAssertEqual(settings.refine?.crop, wholeImage, "AffinityNet sees whole images, on the stride-8 grid")
            XCTAssertEqual(settings.segmentation?.crop, side)
            XCTAssertEqual(settings.segmentation?.widthDivisor, 16)
            // Every round uses its last epoch: the demo trains no epoch it does not use.
            XCTAssertEqual(settings.usedEpochs, Array(repeating: settings.epochs - 1, count: settings.rounds))
        }
    }

    func testTheRecipeDepartsFromTheReferenceWhereItSaysSo() {
        let demo = SCCAMPipeline.Settings.demo(vocRoot: "voc", imageSize: 96, widthDivisor: 16)
        let reference = SCCAMPipeline.Settings(vocRoot: "voc")
        XCTAssertEqual(demo.vocRoot, reference.vocRoot)
        // From scratch: real momentum instead of the reference's effective 0.0005.
        XCTAssertEqual(demo.momentum, 0.9)
        XCTAssertNotEqual(demo.momentum, reference.momentum)
        // Psa's CAMs (round 0), and a walk over every pair of the small grid.
        XCTAssertEqual(demo.refine?.camsRound, 0)
        XCTAssertEqual(demo.refine?.walk.pairs, .wholeGrid)
        XCTAssertEqual(reference.refine?.walk.pairs, .psa)
        // DeepLab from scratch: fewer iterations at a higher rate than the fine-tuning schedule.
        XCTAssertEqual(demo.segmentation?.iterations, 300)
        XCTAssertEqual(reference.segmentation?.iterations, 20_000)
        XCTAssertGreaterThan(demo.segmentation?.learningRate ?? 0, reference.segmentation?.learningRate ?? 1)
    }
}
