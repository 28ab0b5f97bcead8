import Data
import Formats
import Foundation
import Network
import TestSupport
import XCTest

final class ExtractCommandTests: XCTestCase {
    static let weights = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../NetworkTests/Golden/r38w16_round1.safetensors").standardized.path

    private var temporary: TemporaryDirectory!
    private var voc: TinyVOC!

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory(prefix: "sccam-extract")
        voc = try TinyVOC.make(in: temporary.path)
    }

    override func tearDown() { temporary.remove() }

    private func extract(_ work: String, ranks: Int = 1, extra: [String] = []) throws -> ProcessResult {
        let arguments = ["extract", "--voc-root", voc.root, "--list", "train", "--weights", Self.weights, "--round", "1",
                         "--work", work] + extra
        return ranks == 1 ? try TestProcess.sccam(arguments) : try TestProcess.mpirun(ranks: ranks, arguments)
    }

    private func features(_ work: String) throws -> (ids: [String], values: [Float]) {
        let ids = try String(contentsOfFile: "\(work)/features/R1_images.txt", encoding: .utf8).split(separator: "\n").map(String.init)
        let array = try NPY.read("\(work)/features/R1_features.npy")
        XCTAssertEqual(array.shape, [ids.count, 256])
        return (ids, try array.values())
    }

    func testFeaturesEqualTheNetworkOnTheSameViewsOnOneAndTwoRanks() throws {
        let one = try extract(temporary.path + "/one")
        XCTAssertEqual(one.status, 0, "\(one)")
        let two = try extract(temporary.path + "/two", ranks: 2)
        XCTAssertEqual(two.status, 0, "\(two)")
        let (ids, single) = try features(temporary.path + "/one")
        let (idsTwo, double) = try features(temporary.path + "/two")
        XCTAssertEqual(ids, voc.images.filter { !$0.inVal }.map(\.id))
        XCTAssertEqual(idsTwo, ids)

        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: 1))
        try network.loadWeights(Self.weights)
        var expected: [Float] = []
        for id in ids {
            let image = try JPEG.read("\(voc.root)/JPEGImages/\(id).jpg")
            let input = InferenceViews.extraction(image)
            expected += input.withUnsafeBufferPointer {
                network.forward(input: $0.baseAddress!, batch: 1, height: image.height, width: image.width).features
            }
        }
        let scale = expected.map(abs).max()!
        XCTAssertGreaterThan(scale, 0)
        XCTAssertLessThanOrEqual(zip(single, expected).map { abs($0 - $1) }.max()! / scale, 1e-5)
        XCTAssertLessThanOrEqual(zip(double, expected).map { abs($0 - $1) }.max()! / scale, 1e-5)
        // The image-level labels are written beside the features, in the same order.
        let labels = try NPY.read("\(temporary.path)/one/features/R1_labels.npy").floatValues()
        XCTAssertEqual(labels.count, ids.count * 20)
        XCTAssertEqual(labels[0 * 20 + 14], 1, "2007_000032 has a person")
    }

    func testAKilledExtractionResumesWithoutRedoingFinishedImages() throws {
        let work = temporary.path + "/resumed"
        let killed = try extract(work, extra: ["--checkpoint-every", "1", "--debug-stop-after", "2"])
        XCTAssertEqual(killed.status, 9, "\(killed)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(work)/features/R1_features.npy"), "nothing final after a kill")
        let resumed = try extract(work, extra: ["--resume"])
        XCTAssertEqual(resumed.status, 0, "\(resumed)")
        XCTAssertTrue(resumed.standardOutput.contains("resuming: 2 image(s) already extracted"), resumed.standardOutput)
        let clean = try extract(temporary.path + "/clean")
        XCTAssertEqual(clean.status, 0)
        XCTAssertEqual(try features(work).values, try features(temporary.path + "/clean").values)
    }

    func testClusterReadsWhatExtractWrote() throws {
        let work = temporary.path + "/chain"
        XCTAssertEqual(try extract(work).status, 0)
        let result = try TestProcess.sccam(["cluster", "--round", "2", "--work", work, "--k", "2", "--n-init", "2"])
        XCTAssertEqual(result.status, 0, "\(result)")
        let tsv = try String(contentsOfFile: "\(work)/labels/R2_subcategories.tsv", encoding: .utf8)
        XCTAssertEqual(tsv.split(separator: "\n").count, 1 + 4)
        XCTAssertTrue(tsv.contains("2007_000032\t0,14\t"), tsv)
        // And a round-2 classifier trains on those sub-category labels from the round-1 weights.
        let train = try TestProcess.sccam(["train", "--voc-root", voc.root, "--work", work, "--round", "2", "--k", "2",
                                           "--init", Self.weights, "--epochs", "2", "--batch", "2", "--crop", "32",
                                           "--lr", "0.001", "--log-every", "1", "--threads", "1"], timeout: 600)
        XCTAssertEqual(train.status, 0, "\(train)")
        XCTAssertTrue(train.standardOutput.contains("acc20"), train.standardOutput)
        let trained = try Safetensors.read("\(work)/weights/R2_ep1.safetensors").tensors
        XCTAssertEqual(trained.first { $0.name == "fc8_200.weight" }?.shape, [40, 256, 1, 1], "k = 2 gives a 40-way sub-category head")
    }
}
