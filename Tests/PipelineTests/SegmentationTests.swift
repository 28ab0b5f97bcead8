import Formats
import Foundation
import Pipeline
import TestSupport
import XCTest

/// `sccam train-seg` and `sccam segment` on a tiny VOC folder with its
/// ground-truth masks as labels: the rank count, a split sub-batch, micro-
/// batches and a stop-and-resume do not change the weights; segmenting on 1
/// or 2 ranks writes the same PNGs.
final class SegmentationTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var voc: TinyVOC!
    private var list = ""

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory(prefix: "sccam-train-seg")
        voc = try TinyVOC.make(in: temporary.path)
        // The four images with SegmentationClassAug masks: one iteration an epoch.
        list = temporary.path + "/four.txt"
        try AtomicFile.write(voc.images.filter(\.hasAugmentedMask).map(\.id).joined(separator: "\n") + "\n", to: list)
    }

    override func tearDown() { temporary.remove() }

    private func trainSeg(_ work: String, ranks: Int = 1, _ extra: [String]) throws -> ProcessResult {
        let arguments = ["train-seg", "--voc-root", voc.root, "--list", list, "--labels", voc.root + "/SegmentationClassAug",
                         "--work", work, "--width-divisor", "32", "--crop", "33", "--lr", "0.001", "--seed", "3", "--threads", "1",
                         "--log-every", "1"] + extra
        return ranks == 1 ? try TestProcess.sccam(arguments, timeout: 900) : try TestProcess.mpirun(ranks: ranks, arguments, timeout: 900)
    }

    private func weights(_ path: String) throws -> [Float] { try Safetensors.read(path).tensors.flatMap { try $0.floatValues() } }

    private func assertClose(_ a: [Float], _ b: [Float], _ what: String) {
        XCTAssertEqual(a.count, b.count)
        let scale = b.map(abs).max()!
        let worst = zip(a, b).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst / scale, 1e-5, "\(what): relative difference \(worst / scale)")
    }

    func testRankCountSplitSubBatchesMicroBatchesAndResumeKeepTheWeights() throws {
        // Two sub-batches of 2 per iteration.
        let shape = ["--iterations", "3", "--batch", "2", "--iter-size", "2"]
        let one = try trainSeg(temporary.path + "/one", shape)
        XCTAssertEqual(one.status, 0, "\(one)")
        XCTAssertTrue(one.standardOutput.contains("trained 3 iteration(s)"), one.standardOutput)
        let reference = try weights(temporary.path + "/one/weights/SEG_ep2.safetensors")
        let initial = try Safetensors.read(temporary.path + "/one/weights/SEG_ep0.safetensors").tensors.first { $0.name == "base.aspp.c0.bias" }
        XCTAssertNotNil(initial)
        let metrics = try String(contentsOfFile: temporary.path + "/one/logs/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(metrics.count, 3)
        XCTAssertTrue(metrics[0].contains("\"loss_s0.5\"") && metrics[0].contains("\"loss_max\""), String(metrics[0]))

        // 2 ranks: one sub-batch each.
        let two = try trainSeg(temporary.path + "/two", ranks: 2, shape)
        XCTAssertEqual(two.status, 0, "\(two)")
        assertClose(try weights(temporary.path + "/two/weights/SEG_ep2.safetensors"), reference, "2 ranks x 1 sub-batch against 1 rank x 2")

        // One sub-batch of 4 split over 2 ranks: the labelled-pixel counts are summed first.
        let whole = try trainSeg(temporary.path + "/whole", ["--iterations", "3", "--batch", "4", "--iter-size", "1"])
        XCTAssertEqual(whole.status, 0, "\(whole)")
        let split = try trainSeg(temporary.path + "/split", ranks: 2, ["--iterations", "3", "--batch", "4", "--iter-size", "1"])
        XCTAssertEqual(split.status, 0, "\(split)")
        let wholeWeights = try weights(temporary.path + "/whole/weights/SEG_ep2.safetensors")
        assertClose(try weights(temporary.path + "/split/weights/SEG_ep2.safetensors"), wholeWeights, "a sub-batch split over 2 ranks")
        XCTAssertGreaterThan(zip(wholeWeights, reference).map { abs($0 - $1) }.max()!, 0, "one sub-batch of 4 is not two of 2")

        let parts = try trainSeg(temporary.path + "/parts", shape + ["--micro-batch", "1"])
        XCTAssertEqual(parts.status, 0, "\(parts)")
        assertClose(try weights(temporary.path + "/parts/weights/SEG_ep2.safetensors"), reference, "micro-batches of 1")

        let first = try trainSeg(temporary.path + "/resumed", shape + ["--stop-after-epochs", "1"])
        XCTAssertEqual(first.status, 0, "\(first)")
        let rest = try trainSeg(temporary.path + "/resumed", shape + ["--resume"])
        XCTAssertEqual(rest.status, 0, "\(rest)")
        XCTAssertTrue(rest.standardOutput.contains("resuming after epoch 0"), rest.standardOutput)
        XCTAssertEqual(try weights(temporary.path + "/resumed/weights/SEG_ep2.safetensors"), reference, "resume is exact")

        // Segmenting on 1 and 2 ranks writes the same PNGs; the CRF output too.
        let model = temporary.path + "/one/weights/SEG_ep2.safetensors"
        let segmentArguments = ["segment", "--voc-root", voc.root, "--list", list, "--weights", model, "--width-divisor", "32",
                                "--crf", "reference", "--threads", "1"]
        let single = try TestProcess.sccam(segmentArguments + ["--work", temporary.path + "/seg1"], timeout: 600)
        XCTAssertEqual(single.status, 0, "\(single)")
        let double = try TestProcess.mpirun(ranks: 2, segmentArguments + ["--work", temporary.path + "/seg2"], timeout: 600)
        XCTAssertEqual(double.status, 0, "\(double)")
        for image in voc.images where image.hasAugmentedMask {
            for folder in ["segment", "segment_crf", "segment_color"] {
                let a = try AtomicFile.read("\(temporary.path)/seg1/\(folder)/\(image.id).png")
                XCTAssertEqual(a, try AtomicFile.read("\(temporary.path)/seg2/\(folder)/\(image.id).png"), "\(folder)/\(image.id)")
            }
            let labels = try PNG.readIndexed("\(temporary.path)/seg1/segment/\(image.id).png")
            XCTAssertEqual([labels.width, labels.height], [image.width, image.height])
            XCTAssertTrue(labels.indices.allSatisfy { $0 < 21 })
        }
        let rerun = try TestProcess.sccam(segmentArguments + ["--work", temporary.path + "/seg1"], timeout: 600)
        XCTAssertTrue(rerun.standardOutput.contains("segmented 0 image(s), 4 already done"), rerun.standardOutput)
        let scored = try TestProcess.sccam(["eval", "--pred", temporary.path + "/seg1/segment", "--gt", voc.root + "/SegmentationClassAug",
                                            "--list", list])
        XCTAssertEqual(scored.status, 0, "\(scored)")
    }

    /// SIGTERM mid-run writes SEG_partial and exits 4; resuming to epoch 5 gives the
    /// weights of an uninterrupted run to epoch 5, bit for bit.
    func testSIGTERMThenResumeEqualsUninterruptedTraining() throws {
        let interrupted = temporary.path + "/interrupted"
        let arguments = ["train-seg", "--voc-root", voc.root, "--list", list, "--labels", voc.root + "/SegmentationClassAug",
                         "--work", interrupted, "--width-divisor", "32", "--crop", "33", "--lr", "0.001", "--seed", "3", "--threads", "1",
                         "--log-every", "1", "--iterations", "200", "--batch", "2", "--iter-size", "2", "--checkpoint-every", "1000"]
        guard let process = try TestProcess.startTraining(arguments, work: interrupted, steps: 2) else {
            throw XCTSkip("training did not reach 2 steps in time")
        }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 4, "stopped on request")
        let state = try Safetensors.read("\(interrupted)/weights/SEG_partial.state.safetensors")
        let epoch = try XCTUnwrap(Int(state.metadata["sccam.epoch"] ?? ""))
        XCTAssertLessThan(epoch, 5, "the stop came too late for this comparison")
        // One iteration per epoch: the partial checkpoint ends its epoch.
        let resumed = try TestProcess.sccam(arguments + ["--resume", "--stop-after-epochs", "\(5 - epoch)"], timeout: 600)
        XCTAssertEqual(resumed.status, 0, "\(resumed)")
        var straightArguments = arguments
        straightArguments[straightArguments.firstIndex(of: interrupted)!] = temporary.path + "/straight"
        let straight = try TestProcess.sccam(straightArguments + ["--stop-after-epochs", "6"], timeout: 600)
        XCTAssertEqual(straight.status, 0, "\(straight)")
        XCTAssertEqual(try weights("\(interrupted)/weights/SEG_ep5.safetensors"), try weights("\(temporary.path)/straight/weights/SEG_ep5.safetensors"))
    }

    func testBadLabelsAndInitialisationsAreRefused() throws {
        let labels = temporary.path + "/labels"
        try FileManager.default.createDirectory(atPath: labels, withIntermediateDirectories: true)
        let id = voc.images.first(where: \.hasAugmentedMask)!.id
        let image = voc.images.first(where: \.hasAugmentedMask)!
        try PNG.write(IndexedImage(width: image.width, height: image.height, indices: [UInt8](repeating: 40, count: image.width * image.height)),
                      to: "\(labels)/\(id).png")
        let arguments = ["train-seg", "--voc-root", voc.root, "--list", list, "--labels", labels, "--work", temporary.path + "/bad",
                         "--width-divisor", "32", "--crop", "33", "--iterations", "1", "--batch", "4", "--iter-size", "1", "--threads", "1"]
        let bad = try TestProcess.sccam(arguments)
        XCTAssertEqual(bad.status, 1, "\(bad)")
        XCTAssertTrue(bad.standardError.contains("holds label 40") || bad.standardError.contains("no label map"), bad.standardError)
        let missingInit = try TestProcess.sccam(arguments + ["--init", temporary.path + "/nothing.pth"])
        XCTAssertEqual(missingInit.status, 1, "\(missingInit)")
        XCTAssertTrue(missingInit.standardError.contains("nothing.pth"), missingInit.standardError)
    }
}
