import Data
import Formats
import Foundation
import Kernels
import Network
import Pipeline
import TestSupport
import XCTest

final class InferTests: XCTestCase {
    /// The multi-scale + flip path against a composition written out plainly:
    /// every view's 20 CAMs resized, multiplied by the label vector, un-flipped
    /// with an index reversal, summed in view order, normalised by max + 1e-5.
    func testCAMsEqualADirectCompositionOfTheNetworksViews() throws {
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: 1))
        try network.loadWeights(ExtractCommandTests.weights)
        var generator = SeededGenerator(seed: 5)
        let image = RGBImage(width: 37, height: 29, pixels: (0..<(37 * 29 * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let present = [3, 14]
        let result = CAMInference.run(network: network, image: image, classes: present)

        let (W, H) = (37, 29)
        var sum = [Float](repeating: 0, count: 20 * W * H)
        var subSum = [Float](repeating: 0, count: 200 * W * H)
        for view in InferenceViews.make(image) {
            _ = view.tensor.withUnsafeBufferPointer { network.forward(input: $0.baseAddress!, batch: 1, height: view.height, width: view.width) }
            let (h, w) = network.mapSize
            for (head, classes) in [(0, 20), (1, 200)] {
                let cams = network.classActivationMaps(head: head)
                var up = [Float](repeating: 0, count: classes * W * H)
                BilinearResize.resize(cams, planes: classes, height: h, width: w, output: &up, newHeight: H, newWidth: W)
                for c in 0..<classes {
                    let label: Float = present.contains(head == 0 ? c : c / 10) ? 1 : 0
                    for y in 0..<H {
                        for x in 0..<W {
                            let value = up[(c * H + y) * W + (view.flipped ? W - 1 - x : x)] * label
                            if head == 0 { sum[(c * H + y) * W + x] += value } else { subSum[(c * H + y) * W + x] += value }
                        }
                    }
                }
            }
        }
        for (slot, c) in present.enumerated() {
            let channel = Array(sum[(c * W * H)..<((c + 1) * W * H)])
            let maximum = channel.max()!
            XCTAssertGreaterThan(maximum, 0)
            let expected = channel.map { $0 / (maximum + 1e-5) }
            let ours = Array(result.parentMaps[(slot * W * H)..<((slot + 1) * W * H)])
            XCTAssertLessThanOrEqual(zip(ours, expected).map { abs($0 - $1) }.max()!, 1e-6, "class \(c)")
            let group = Array(subSum[(c * 10 * W * H)..<((c + 1) * 10 * W * H)])
            let groupMax = group.max()!
            let oursSub = Array(result.subcategoryMaps![(slot * 10 * W * H)..<((slot + 1) * 10 * W * H)])
            XCTAssertLessThanOrEqual(zip(oursSub, group.map { $0 / (groupMax + 1e-5) }).map { abs($0 - $1) }.max()!, 1e-6, "sub-categories of \(c)")
        }
        // Masks: background unless a present class beats the threshold; ties go to background.
        let mask = CAMInference.mask(maps: result.parentMaps, classes: present, plane: W * H)
        XCTAssertTrue(Set(mask).isSubset(of: [0, 4, 15]))
        XCTAssertEqual(CAMInference.mask(maps: [0.15, 0.2], classes: [7], plane: 2), [0, 8])
    }

    /// Same threads per rank in both runs: OpenBLAS's summation order depends
    /// on its thread count, and what this checks is that sharding changes nothing.
    func testInferOnOneAndTwoRanksWritesIdenticalFilesAndResumes() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-infer")
        defer { temporary.remove() }
        let voc = try TinyVOC.make(in: temporary.path)
        func infer(_ work: String, ranks: Int) throws -> ProcessResult {
            let arguments = ["infer", "--voc-root", voc.root, "--list", "train", "--weights", ExtractCommandTests.weights,
                             "--work", work, "--scales", "1,0.5", "--threads", "1"]
            return ranks == 1 ? try TestProcess.sccam(arguments) : try TestProcess.mpirun(ranks: ranks, arguments)
        }
        let one = try infer(temporary.path + "/one", ranks: 1)
        XCTAssertEqual(one.status, 0, "\(one)")
        let two = try infer(temporary.path + "/two", ranks: 2)
        XCTAssertEqual(two.status, 0, "\(two)")
        let ids = voc.images.filter { !$0.inVal }.map(\.id)
        for id in ids {
            for file in ["cams/\(id).npy", "cams/\(id).classes.npy", "masks/\(id).png", "masks_sub/\(id).png", "overlays/\(id).png"] {
                let a = try AtomicFile.read("\(temporary.path)/one/\(file)"), b = try AtomicFile.read("\(temporary.path)/two/\(file)")
                XCTAssertEqual(a, b, "\(file) differs between 1 and 2 ranks")
            }
            let image = voc.images.first { $0.id == id }!
            let mask = try PNG.readIndexed("\(temporary.path)/one/masks/\(id).png")
            XCTAssertEqual(mask.palette, VOCPalette.colors, "a VOC palette PNG")
            XCTAssertEqual(mask.width, image.width)
            XCTAssertTrue(Set(mask.indices).isSubset(of: Set([0] + image.classes.map { UInt8($0 + 1) })))
            let cams = try NPY.read("\(temporary.path)/one/cams/\(id).npy")
            XCTAssertEqual(cams.shape, [image.classes.count, image.height, image.width])
            XCTAssertEqual(try NPY.read("\(temporary.path)/one/cams/\(id).classes.npy").values(as: Int32.self), image.classes.sorted().map(Int32.init))
            let overlay = try PNG.readRGB("\(temporary.path)/one/overlays/\(id).png")
            XCTAssertEqual(overlay.width, image.width * (1 + image.classes.count))
        }
        let again = try infer(temporary.path + "/one", ranks: 1)
        XCTAssertTrue(again.standardOutput.contains("computed 0 image(s), 4 already done"), again.standardOutput)

        // The masks can be scored against the ground truth.
        let eval = try TestProcess.sccam(["eval", "--pred", temporary.path + "/one/masks", "--gt", voc.root + "/SegmentationClass"])
        XCTAssertEqual(eval.status, 0, "\(eval)")
        XCTAssertTrue(eval.standardOutput.contains("4 image(s) scored"), eval.standardOutput)
        let sweep = try TestProcess.sccam(["eval", "--cams", temporary.path + "/one/cams", "--gt", voc.root + "/SegmentationClass",
                                          "--thresholds", "0.1:0.3:0.05"])
        XCTAssertEqual(sweep.status, 0, "\(sweep)")
        XCTAssertEqual(sweep.standardOutput.split(separator: "\n").filter { $0.hasPrefix("threshold ") }.count, 5, sweep.standardOutput)
        XCTAssertTrue(sweep.standardOutput.contains("best background threshold"), sweep.standardOutput)
        // At the inference threshold, the sweep scores exactly what the masks score.
        let atDefault = try TestProcess.sccam(["eval", "--cams", temporary.path + "/one/cams", "--gt", voc.root + "/SegmentationClass",
                                              "--thresholds", "0.15:0.15:0.05", "--pred", temporary.path + "/one/masks"])
        let lines = atDefault.standardOutput.split(separator: "\n")
        let swept = try XCTUnwrap(lines.first { $0.hasPrefix("threshold 0.150") }).split(separator: " ").last!
        let scored = try XCTUnwrap(lines.first { $0.hasPrefix("mIoU") }).split(separator: " ")[1]
        XCTAssertEqual(String(swept), String(scored))
    }
}

final class RoundZeroInferenceTests: XCTestCase {
    /// psa's round-0 classifier has one head: the same path gives its 20-class maps and no sub-category maps.
    func testRoundZeroModelsHaveParentMapsOnly() throws {
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: 0))
        try network.loadWeights(ExtractCommandTests.weights.replacingOccurrences(of: "round1", with: "round0"))
        let image = RGBImage(width: 24, height: 20, fill: (90, 140, 200))
        let result = CAMInference.run(network: network, image: image, classes: [0, 19], scales: [1, 0.5])
        XCTAssertNil(result.subcategoryMaps)
        XCTAssertEqual(result.parentMaps.count, 2 * 24 * 20)
        XCTAssertTrue(result.parentMaps.allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertNil(CAMInference.mergedSubcategoryMaps(result))
    }
}
