import Formats
import Foundation
import Pipeline
import TestSupport
import XCTest

/// `sccam train-aff` on a tiny VOC folder: the rank count, micro-batches and
/// a stop-and-resume do not change the weights.
final class AffinityTrainingTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var voc: TinyVOC!
    private var list = ""

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory(prefix: "sccam-train-aff")
        voc = try TinyVOC.make(in: temporary.path)
        // Eight samples (two images twice): a global batch of 8 is one step an epoch.
        let ids = voc.images.map(\.id)
        list = temporary.path + "/eight.txt"
        try AtomicFile.write((ids + ids.prefix(8 - ids.count)).joined(separator: "\n") + "\n", to: list)
        let cams = temporary.path + "/cams"
        let inferred = try TestProcess.sccam(["infer", "--voc-root", voc.root, "--list", list, "--weights", ExtractCommandTests.weights,
                                              "--work", cams, "--scales", "1", "--threads", "2"])
        XCTAssertEqual(inferred.status, 0, "\(inferred)")
        let labelled = try TestProcess.sccam(["affinity-labels", "--voc-root", voc.root, "--list", list, "--cams", cams + "/cams",
                                              "--work", temporary.path + "/labels", "--threads", "2"])
        XCTAssertEqual(labelled.status, 0, "\(labelled)")
    }

    override func tearDown() { temporary.remove() }

    private func trainAff(_ work: String, ranks: Int = 1, _ extra: [String] = []) throws -> ProcessResult {
        let arguments = ["train-aff", "--voc-root", voc.root, "--list", list, "--labels", temporary.path + "/labels/affinity",
                         "--work", work, "--width-divisor", "16", "--crop", "80", "--epochs", "3", "--seed", "5", "--threads", "1",
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

    func testTwoRanksMicroBatchesAndResumeGiveTheWeightsOfOneRank() throws {
        let one = try trainAff(temporary.path + "/one")
        XCTAssertEqual(one.status, 0, "\(one)")
        XCTAssertTrue(one.standardOutput.contains("trained 3 step(s)"), one.standardOutput)
        let reference = try weights(temporary.path + "/one/weights/AFF_ep2.safetensors")
        // Training moved the weights (the new layers at 10x lr most of all).
        let metrics = try String(contentsOfFile: temporary.path + "/one/logs/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(metrics.count, 3)
        XCTAssertTrue(metrics[0].contains("\"loss_bg\"") && metrics[0].contains("\"count_neg\""), String(metrics[0]))

        let two = try trainAff(temporary.path + "/two", ranks: 2)
        XCTAssertEqual(two.status, 0, "\(two)")
        assertClose(try weights(temporary.path + "/two/weights/AFF_ep2.safetensors"), reference, "2 ranks x 4 against 1 rank x 8")

        let parts = try trainAff(temporary.path + "/parts", ["--micro-batch", "3"])
        XCTAssertEqual(parts.status, 0, "\(parts)")
        XCTAssertTrue(parts.standardOutput.contains("micro-batches of 3"), parts.standardOutput)
        assertClose(try weights(temporary.path + "/parts/weights/AFF_ep2.safetensors"), reference, "micro-batches of 3")

        let first = try trainAff(temporary.path + "/resumed", ["--stop-after-epochs", "1"])
        XCTAssertEqual(first.status, 0, "\(first)")
        let rest = try trainAff(temporary.path + "/resumed", ["--resume"])
        XCTAssertEqual(rest.status, 0, "\(rest)")
        XCTAssertTrue(rest.standardOutput.contains("resuming after epoch 0"), rest.standardOutput)
        XCTAssertEqual(try weights(temporary.path + "/resumed/weights/AFF_ep2.safetensors"), reference, "resume is exact")
    }

    func testMissingScoresStopWithTheirPath() throws {
        try FileManager.default.removeItem(atPath: temporary.path + "/labels/affinity/\(voc.images[0].id).npy")
        let result = try trainAff(temporary.path + "/missing")
        XCTAssertEqual(result.status, 1, "\(result)")
        XCTAssertTrue(result.standardError.contains("\(voc.images[0].id).npy"), result.standardError)
    }

    /// SIGTERM mid-run writes AFF_partial and exits 4; resuming to epoch 5 gives the
    /// weights of an uninterrupted run to epoch 5, bit for bit.
    func testSIGTERMThenResumeEqualsUninterruptedTraining() throws {
        let interrupted = temporary.path + "/interrupted"
        let arguments = ["train-aff", "--voc-root", voc.root, "--list", list, "--labels", temporary.path + "/labels/affinity",
                         "--work", interrupted, "--width-divisor", "16", "--crop", "80", "--epochs", "200", "--seed", "5", "--threads", "1",
                         "--log-every", "1", "--checkpoint-every", "1000"]
        guard let process = try TestProcess.startTraining(arguments, work: interrupted, steps: 2) else {
            throw XCTSkip("training did not reach 2 steps in time")
        }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 4, "stopped on request")
        let state = try Safetensors.read("\(interrupted)/weights/AFF_partial.state.safetensors")
        let epoch = try XCTUnwrap(Int(state.metadata["sccam.epoch"] ?? ""))
        XCTAssertLessThan(epoch, 5, "the stop came too late for this comparison")
        // One step per epoch: the partial checkpoint ends its epoch.
        let resumed = try TestProcess.sccam(arguments + ["--resume", "--stop-after-epochs", "\(5 - epoch)"], timeout: 600)
        XCTAssertEqual(resumed.status, 0, "\(resumed)")
        var straightArguments = arguments
        straightArguments[straightArguments.firstIndex(of: interrupted)!] = temporary.path + "/straight"
        let straight = try TestProcess.sccam(straightArguments + ["--stop-after-epochs", "6"], timeout: 600)
        XCTAssertEqual(straight.status, 0, "\(straight)")
        XCTAssertEqual(try weights("\(interrupted)/weights/AFF_ep5.safetensors"), try weights("\(temporary.path)/straight/weights/AFF_ep5.safetensors"))
    }
}
