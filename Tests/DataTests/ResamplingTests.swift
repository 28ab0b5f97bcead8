import Data
import Formats
import Foundation
import Kernels
import XCTest

/// Resampling against the reference library's own outputs (Golden/, copied
/// from shared/golden/resize).
final class ResamplingTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path

    func testBicubicResizeReproducesPillowExactly() throws {
        let source = try PNG.readRGB("\(Self.directory)/source.png")
        XCTAssertEqual(source.width, 53)
        XCTAssertEqual(source.height, 37)
        let cases: [(String, Int, Int)] = [("bicubic_s0.5.png", 26, 18), ("bicubic_s1.5.png", 80, 56), ("bicubic_s2.0.png", 106, 74),
                                           ("bicubic_long256.png", 256, 179), ("bicubic_long300.png", 300, 209)]
        for (file, width, height) in cases {
            let expected = try PNG.readRGB("\(Self.directory)/\(file)")
            XCTAssertEqual(expected.width, width)
            XCTAssertEqual(expected.height, height)
            let ours = BicubicResize.resize(source, width: width, height: height)
            let differences = zip(ours.pixels, expected.pixels).map { abs(Int($0) - Int($1)) }
            // Exact: every pixel of every case equals the reference library's.
            XCTAssertEqual(differences.max(), 0, "\(file): \(differences.filter { $0 > 0 }.count) pixels differ")
        }
    }

    func testTargetSizesRoundHalfToEven() {
        // 53 x 0.5 = 26.5 -> 26 and 37 x 0.5 = 18.5 -> 18; 375 x 1.5 = 562.5 -> 562; 333 x 0.5 = 166.5 -> 166.
        XCTAssertTrue(InferenceViews.size(width: 53, height: 37, scale: 0.5) == (26, 18))
        XCTAssertTrue(InferenceViews.size(width: 53, height: 37, scale: 1.5) == (80, 56))
        XCTAssertTrue(InferenceViews.size(width: 375, height: 333, scale: 1.5) == (562, 500))
        XCTAssertTrue(InferenceViews.size(width: 375, height: 333, scale: 0.5) == (188, 166))
        XCTAssertTrue(TrainingAugmentation.longSideTarget(width: 53, height: 37, longSide: 256) == (256, 179))
        XCTAssertTrue(TrainingAugmentation.longSideTarget(width: 37, height: 53, longSide: 300) == (209, 300))
        // Equal sides take the second branch: (L, round(h*L/w)).
        XCTAssertTrue(TrainingAugmentation.longSideTarget(width: 40, height: 40, longSide: 300) == (300, 300))
        // 3 * 300 / 8 = 112.5 -> 112 (even), 5 * 300 / 8 = 187.5 -> 188.
        XCTAssertTrue(TrainingAugmentation.longSideTarget(width: 8, height: 3, longSide: 300) == (300, 112))
        XCTAssertTrue(TrainingAugmentation.longSideTarget(width: 8, height: 5, longSide: 300) == (300, 188))
    }

    func testBilinearCAMUpsamplingMatchesTheReference() throws {
        let small = try NPY.read("\(Self.directory)/cam_small.npy")
        let expected = try NPY.read("\(Self.directory)/cam_up_37x53.npy")
        XCTAssertEqual(small.shape, [2, 5, 7])
        XCTAssertEqual(expected.shape, [2, 37, 53])
        let input: [Float] = try small.values()
        var output = [Float](repeating: 0, count: 2 * 37 * 53)
        BilinearResize.resize(input, planes: 2, height: 5, width: 7, output: &output, newHeight: 37, newWidth: 53)
        let reference: [Float] = try expected.values()
        let worst = zip(output, reference).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, 1e-6)
    }
}
