import DenseCRF
import Formats
import Foundation
import Pipeline
import TestSupport
import XCTest

/// `sccam crf` on the golden cases, and its refusals of bad input.
final class CRFCommandTests: XCTestCase {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../DenseCRFTests/Golden/crf").standardized.path

    func testOneImageThroughTheCommandEqualsTheGolden() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-crf")
        defer { temporary.remove() }
        for (name, preset) in [("psa_alpha4_100x75", "psa"), ("deeplab_softmax_80x60", "deeplab")] {
            let folder = "\(Self.golden)/\(name)"
            let out = "\(temporary.path)/\(name).npy", labels = "\(temporary.path)/\(name).png"
            let result = try TestProcess.sccam(["crf", "--image", "\(folder)/image.png", "--probs", "\(folder)/probs.npy", "--out", out,
                                                "--preset", preset, "--labels-out", labels, "--threads", "2"])
            XCTAssertEqual(result.status, 0, "\(result)")
            let ours: [Float] = try NPY.read(out).values(), expected: [Float] = try NPY.read("\(folder)/q_t10.npy").values()
            XCTAssertLessThanOrEqual(zip(ours, expected).map { abs($0 - $1) }.max()!, 1e-4, name)
            let mask = try PNG.readIndexed(labels)
            let shape = try NPY.read("\(folder)/q_t10.npy").shape
            XCTAssertEqual([mask.height, mask.width], [shape[1], shape[2]])
            let plane = shape[1] * shape[2]
            for i in stride(from: 0, to: plane, by: 97) {
                let best = (0..<shape[0]).max { expected[$0 * plane + i] < expected[$1 * plane + i] }!
                XCTAssertEqual(Int(mask.indices[i]), best, "\(name) pixel \(i)")
            }
        }
        // Explicit kernels equal the preset they spell out.
        let folder = "\(Self.golden)/psa_alpha4_37x29"
        let explicit = try TestProcess.sccam(["crf", "--image", "\(folder)/image.png", "--probs", "\(folder)/probs.npy",
                                              "--out", "\(temporary.path)/explicit.npy", "--preset", "deeplab",
                                              "--gaussian", "3,3", "--bilateral", "80,13,10", "--iterations", "1"])
        XCTAssertEqual(explicit.status, 0, "\(explicit)")
        let ours: [Float] = try NPY.read("\(temporary.path)/explicit.npy").values(), expected: [Float] = try NPY.read("\(folder)/q_t1.npy").values()
        XCTAssertLessThanOrEqual(zip(ours, expected).map { abs($0 - $1) }.max()!, 1e-4)
    }

    func testBadInputsGiveClearErrorsNamingTheFile() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-crf-bad")
        defer { temporary.remove() }
        let folder = "\(Self.golden)/psa_alpha4_37x29"
        let out = "\(temporary.path)/q.npy"
        func crf(image: String = "\(folder)/image.png", probs: String) throws -> ProcessResult {
            try TestProcess.sccam(["crf", "--image", image, "--probs", probs, "--out", out])
        }
        let other = "\(temporary.path)/other.npy"
        try NPY.write([Float](repeating: 0.5, count: 2 * 10 * 10), shape: [2, 10, 10], to: other)
        var result = try crf(probs: other)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.standardError.contains("other.npy") && result.standardError.contains("expected [L, 29, 37]"), result.standardError)

        var values: [Float] = try NPY.read("\(folder)/probs.npy").values()
        values[5] = .nan
        try NPY.write(values, shape: [3, 29, 37], to: "\(temporary.path)/nan.npy")
        result = try crf(probs: "\(temporary.path)/nan.npy")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.standardError.contains("nan.npy") && result.standardError.contains("not a probability"), result.standardError)

        values[5] = 1.5
        try NPY.write(values, shape: [3, 29, 37], to: "\(temporary.path)/big.npy")
        result = try crf(probs: "\(temporary.path)/big.npy")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.standardError.contains("big.npy"), result.standardError)

        try AtomicFile.write("not an image", to: "\(temporary.path)/broken.jpg")
        result = try crf(image: "\(temporary.path)/broken.jpg", probs: "\(folder)/probs.npy")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.standardError.contains("broken.jpg"), result.standardError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing written after an error")

        result = try TestProcess.sccam(["crf", "--image", "\(folder)/image.png", "--probs", "\(folder)/probs.npy", "--out", out, "--gaussian", "3"])
        XCTAssertEqual(result.status, 64, "\(result)")
        XCTAssertTrue(result.standardError.contains("--gaussian must be SXY,COMPAT"), result.standardError)
    }
}

/// `sccam affinity-labels` and `sccam infer --crf` on a tiny VOC folder.
final class AffinityLabelsCommandTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var voc: TinyVOC!

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory(prefix: "sccam-affinity")
        voc = try TinyVOC.make(in: temporary.path)
    }

    override func tearDown() { temporary.remove() }

    private var trainIDs: [String] { voc.images.filter { !$0.inVal }.map(\.id) }

    /// CAMs of the golden width-16 classifier, with dCRF masks.
    private func infer(_ work: String) throws {
        let result = try TestProcess.sccam(["infer", "--voc-root", voc.root, "--list", "train", "--weights", ExtractCommandTests.weights,
                                            "--work", work, "--scales", "1,0.5", "--crf", "4", "--threads", "2"])
        XCTAssertEqual(result.status, 0, "\(result)")
    }

    private func affinityLabels(_ work: String, cams: String, ranks: Int = 1, extra: [String] = []) throws -> ProcessResult {
        let arguments = ["affinity-labels", "--voc-root", voc.root, "--list", "train", "--cams", cams, "--work", work, "--threads", "1"] + extra
        return ranks == 1 ? try TestProcess.sccam(arguments) : try TestProcess.mpirun(ranks: ranks, arguments)
    }

    func testScoresOnOneAndTwoRanksAreIdenticalAndEqualTheLibrarysAndARunResumes() throws {
        let camWork = temporary.path + "/cams"
        try infer(camWork)
        let one = try affinityLabels(temporary.path + "/one", cams: camWork + "/cams")
        XCTAssertEqual(one.status, 0, "\(one)")
        let two = try affinityLabels(temporary.path + "/two", cams: camWork + "/cams", ranks: 2)
        XCTAssertEqual(two.status, 0, "\(two)")
        for id in trainIDs {
            for file in ["affinity/\(id).npy", "affinity/\(id).classes.npy"] {
                XCTAssertEqual(try AtomicFile.read("\(temporary.path)/one/\(file)"), try AtomicFile.read("\(temporary.path)/two/\(file)"), file)
            }
        }
        // The stored stacks are the CRF of [(1 - max CAM)^alpha, CAMs] for alpha 4, then 32.
        let id = trainIDs[0]
        let image = try JPEG.read("\(voc.root)/JPEGImages/\(id).jpg")
        let cams = try CRFScores.readCAMs(folder: camWork + "/cams", id: id, width: image.width, height: image.height)
        let stored = try NPY.read("\(temporary.path)/one/affinity/\(id).npy")
        XCTAssertEqual(stored.shape, [2, 1 + cams.classes.count, image.height, image.width])
        let crf = CRFScores.makeCRF(image: image)
        let expected = [Float(4), 32].flatMap { CRFScores.infer(crf, stack: CRFScores.backgroundStack(cams, alpha: $0), labels: 1 + cams.classes.count) }
        XCTAssertEqual(try stored.values(as: Float.self), expected)
        XCTAssertEqual(try NPY.read("\(temporary.path)/one/affinity/\(id).classes.npy").values(as: Int32.self), cams.classes.map(Int32.init))

        // A killed run: two images' outputs missing and a writer's temporary left behind.
        let work = temporary.path + "/one/affinity"
        let original = try AtomicFile.read("\(work)/\(trainIDs[1]).npy")
        for id in trainIDs.prefix(2) { try FileManager.default.removeItem(atPath: "\(work)/\(id).npy") }
        try AtomicFile.write("partial", to: "\(work)/.\(trainIDs[1]).npy.tmp-999999-1")
        let resumed = try affinityLabels(temporary.path + "/one", cams: camWork + "/cams")
        XCTAssertEqual(resumed.status, 0, "\(resumed)")
        XCTAssertTrue(resumed.standardOutput.contains("computed 2 image(s), \(trainIDs.count - 2) already done"), resumed.standardOutput)
        XCTAssertEqual(try AtomicFile.read("\(work)/\(trainIDs[1]).npy"), original)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(work)/.\(trainIDs[1]).npy.tmp-999999-1"))
    }

    func testMissingOrMalformedCAMsStopWithTheirPathOrAreCounted() throws {
        let camWork = temporary.path + "/cams"
        try infer(camWork)
        let cams = camWork + "/cams"
        try FileManager.default.removeItem(atPath: "\(cams)/\(trainIDs[0]).npy")
        try NPY.write([Float](repeating: 0.5, count: 12), shape: [1, 3, 4], to: "\(cams)/\(trainIDs[1]).npy")
        let stopped = try affinityLabels(temporary.path + "/stopped", cams: cams)
        XCTAssertEqual(stopped.status, 1, "\(stopped)")
        XCTAssertTrue(stopped.standardError.contains("\(cams)/\(trainIDs[0]).npy"), stopped.standardError)
        let skipped = try affinityLabels(temporary.path + "/skipped", cams: cams, extra: ["--skip-unreadable"])
        XCTAssertEqual(skipped.status, 0, "\(skipped)")
        XCTAssertTrue(skipped.standardOutput.contains("2 image(s) were unreadable and skipped"), skipped.standardOutput)
        XCTAssertTrue(skipped.standardOutput.contains("expected float32 [1, "), skipped.standardOutput)
        let written = try FileManager.default.contentsOfDirectory(atPath: temporary.path + "/skipped/affinity").filter { !$0.hasSuffix(".classes.npy") }
        XCTAssertEqual(written.count, trainIDs.count - 2)
    }

    func testInferWithCRFWritesMasksThatEvalScores() throws {
        let work = temporary.path + "/crf"
        try infer(work)
        for id in trainIDs {
            let mask = try PNG.readIndexed("\(work)/masks_crf/\(id).png")
            let classes = Set(try NPY.read("\(work)/cams/\(id).classes.npy").values(as: Int32.self).map { UInt8($0 + 1) })
            XCTAssertTrue(Set(mask.indices).isSubset(of: classes.union([0])), "\(id): only background and the image's classes")
        }
        let eval = try TestProcess.sccam(["eval", "--pred", "\(work)/masks_crf", "--gt", "\(voc.root)/SegmentationClass", "--list", "\(voc.root)/ImageSets/Segmentation/train.txt",
                                          "--json", "\(work)/crf_scores.json"])
        XCTAssertEqual(eval.status, 0, "\(eval)")
        XCTAssertTrue(eval.standardOutput.contains("mIoU"), eval.standardOutput)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(work)/crf_scores.json"))
    }
}
