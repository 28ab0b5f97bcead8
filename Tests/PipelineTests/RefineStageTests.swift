import Formats
import Foundation
import Network
import Pipeline
import TestSupport
import XCTest

/// `sccam refine` on a tiny VOC folder: 1 and 2 ranks, resume, and eval of its labels.
final class RefineStageTests: XCTestCase {
    static let weights = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../NetworkTests/Golden/aff_w16.safetensors").standardized.path
    private var temporary: TemporaryDirectory!
    private var voc: TinyVOC!

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory(prefix: "sccam-refine")
        voc = try TinyVOC.make(in: temporary.path)
    }

    override func tearDown() { temporary.remove() }

    private var trainIDs: [String] { voc.images.filter { !$0.inVal }.map(\.id) }

    private func refine(_ work: String, cams: String, ranks: Int = 1, extra: [String] = []) throws -> ProcessResult {
        let arguments = ["refine", "--voc-root", voc.root, "--list", "train", "--aff-weights", Self.weights, "--cams", cams,
                         "--work", work, "--threads", "1"] + extra
        return ranks == 1 ? try TestProcess.sccam(arguments) : try TestProcess.mpirun(ranks: ranks, arguments)
    }

    func testOneAndTwoRanksWriteIdenticalLabelsThatEqualTheLibrarysAndARunResumes() throws {
        let camWork = temporary.path + "/cams"
        let inferred = try TestProcess.sccam(["infer", "--voc-root", voc.root, "--list", "train", "--weights", ExtractCommandTests.weights,
                                              "--work", camWork, "--scales", "1", "--threads", "2"])
        XCTAssertEqual(inferred.status, 0, "\(inferred)")
        let one = try refine(temporary.path + "/one", cams: camWork + "/cams")
        XCTAssertEqual(one.status, 0, "\(one)")
        let two = try refine(temporary.path + "/two", cams: camWork + "/cams", ranks: 2)
        XCTAssertEqual(two.status, 0, "\(two)")
        for id in trainIDs {
            for folder in ["refine", "refine_color", "refine_overlays"] {
                let file = "\(folder)/\(id).png"
                XCTAssertEqual(try AtomicFile.read("\(temporary.path)/one/\(file)"), try AtomicFile.read("\(temporary.path)/two/\(file)"), file)
            }
        }
        // The grey labels are the library's, class ids 0-20.
        let network = try AffinityNetwork.fromWeights(Self.weights)
        let id = trainIDs[0]
        let image = try JPEG.read("\(voc.root)/JPEGImages/\(id).jpg")
        let cams = try CRFScores.readCAMs(folder: camWork + "/cams", id: id, width: image.width, height: image.height)
        let stored = try PNG.readIndexed("\(temporary.path)/one/refine/\(id).png")
        XCTAssertNil(stored.palette)
        XCTAssertEqual(stored.indices, RefineStage.labels(network: network, image: image, cams: cams, walk: .init()))
        XCTAssertTrue(Set(stored.indices).isSubset(of: Set([0] + cams.classes.map { UInt8($0 + 1) })))

        // --pairs whole-grid walks over every pair of the grid, on 1 and 2 ranks alike.
        let wholeOne = try refine(temporary.path + "/whole1", cams: camWork + "/cams", extra: ["--pairs", "whole-grid"])
        XCTAssertEqual(wholeOne.status, 0, "\(wholeOne)")
        XCTAssertTrue(wholeOne.standardOutput.contains("whole-grid pairs"), wholeOne.standardOutput)
        let wholeTwo = try refine(temporary.path + "/whole2", cams: camWork + "/cams", ranks: 2, extra: ["--pairs", "whole-grid"])
        XCTAssertEqual(wholeTwo.status, 0, "\(wholeTwo)")
        for id in trainIDs {
            XCTAssertEqual(try AtomicFile.read("\(temporary.path)/whole1/refine/\(id).png"),
                           try AtomicFile.read("\(temporary.path)/whole2/refine/\(id).png"), id)
        }
        XCTAssertEqual(try PNG.readIndexed("\(temporary.path)/whole1/refine/\(id).png").indices,
                       RefineStage.labels(network: network, image: image, cams: cams, walk: .init(pairs: .wholeGrid)))
        let bad = try refine(temporary.path + "/bad", cams: camWork + "/cams", extra: ["--pairs", "all"])
        XCTAssertEqual(bad.status, 64, "\(bad)")

        // A killed run resumes: only the missing image is computed.
        let work = temporary.path + "/one"
        try FileManager.default.removeItem(atPath: "\(work)/refine/\(trainIDs[1]).png")
        let resumed = try refine(work, cams: camWork + "/cams")
        XCTAssertEqual(resumed.status, 0, "\(resumed)")
        XCTAssertTrue(resumed.standardOutput.contains("refined 1 image(s), \(trainIDs.count - 1) already done"), resumed.standardOutput)

        // eval scores the labels against the ground truth.
        let scored = try TestProcess.sccam(["eval", "--pred", "\(work)/refine", "--gt", "\(voc.root)/SegmentationClass"])
        XCTAssertEqual(scored.status, 0, "\(scored)")
        XCTAssertTrue(scored.standardOutput.contains("mIoU"), scored.standardOutput)
    }

    func testWrongWeightsStopWithTheirPath() throws {
        let wrong = temporary.path + "/classifier.safetensors"
        try FileManager.default.copyItem(atPath: ExtractCommandTests.weights, toPath: wrong)
        let refused = try TestProcess.sccam(["refine", "--voc-root", voc.root, "--aff-weights", wrong, "--cams", temporary.path,
                                             "--work", temporary.path + "/w2", "--list", "train"])
        XCTAssertEqual(refused.status, 1, "\(refused)")
        XCTAssertTrue(refused.standardError.contains("classifier.safetensors") && refused.standardError.contains("missing tensor f8_3.weight"),
                      refused.standardError)
    }
}
