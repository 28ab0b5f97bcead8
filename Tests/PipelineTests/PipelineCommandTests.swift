import Data
import Formats
import Foundation
import TestSupport
import XCTest

/// `sccam demo` and `sccam pipeline` end to end, at the smallest settings:
/// on 1 rank, under mpirun, through a hostfile over TCP, and interrupted.
final class PipelineCommandTests: XCTestCase {
    /// The demo's smallest setting: every stage of all three rounds runs, each for a step or two.
    static let tinyDemo = ["--images", "16", "--image-size", "32", "--baseline-epochs", "1", "--epochs", "1", "--n-init", "2",
                           "--scales", "1,0.5", "--threads", "1", "--aff-epochs", "1",
                           "--seg-iterations", "2"]

    /// The mIoU of every round in the final table ("R0     0.1234 (0.15) ...").
    private func scores(_ output: String) -> [Int: Double] {
        var scores: [Int: Double] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("R") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let round = Int(fields[0].dropFirst()), let miou = Double(fields[1]) { scores[round] = miou }
        }
        return scores
    }

    private func checkDemoOutputs(_ work: String, _ result: ProcessResult, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(result.status, 0, "\(result)", file: file, line: line)
        XCTAssertTrue(result.standardOutput.contains("pipeline finished: 26 stage(s) run"), result.standardOutput, file: file, line: line)
        let miou = scores(result.standardOutput)
        XCTAssertEqual(miou.keys.sorted(), [0, 1, 2, 3], result.standardOutput, file: file, line: line)
        for (round, value) in miou { XCTAssertTrue((0...1).contains(value), "round \(round): mIoU \(value)", file: file, line: line) }
        for path in ["run.json", "weights/R0_ep0.safetensors", "weights/R3_ep0.safetensors", "features/R2_features.npy",
                     "labels/R3_subcategories.tsv", "infer/R3/scores.json", "voc/JPEGImages/2099_000000.jpg",
                     "weights/AFF_ep0.safetensors", "refine/scores.json", "weights/SEG_final.safetensors", "segment/scores.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(work)/\(path)"), "\(path) is missing", file: file, line: line)
        }
        XCTAssertTrue(result.standardOutput.contains("pseudo-labels after the random walk: mIoU"), result.standardOutput, file: file, line: line)
        XCTAssertTrue(result.standardOutput.contains("segmentation network (DeepLab-v2) on val: mIoU"), result.standardOutput, file: file, line: line)
        let overlays = try FileManager.default.contentsOfDirectory(atPath: "\(work)/infer/R3/overlays")
        XCTAssertFalse(overlays.isEmpty, "overlays are written", file: file, line: line)
        let labels = try FileManager.default.contentsOfDirectory(atPath: "\(work)/refine").filter { $0.hasSuffix(".png") }
        XCTAssertFalse(labels.isEmpty, "pseudo-labels are written", file: file, line: line)
    }

    func testDemoRunsEndToEndAndARerunSkipsEveryStage() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-demo")
        defer { temporary.remove() }
        let work = temporary.path + "/demo"
        let first = try TestProcess.sccam(["demo", "--work", work] + Self.tinyDemo, timeout: 900)
        try checkDemoOutputs(work, first)
        let again = try TestProcess.sccam(["demo", "--work", work] + Self.tinyDemo, timeout: 300)
        XCTAssertEqual(again.status, 0, "\(again)")
        XCTAssertTrue(again.standardOutput.contains("pipeline finished: 0 stage(s) run, 26 already done"), again.standardOutput)
        XCTAssertEqual(scores(again.standardOutput), scores(first.standardOutput))
        // Other settings in the same folder are refused, naming what differs.
        let other = try TestProcess.sccam(["demo", "--work", work] + Self.tinyDemo + ["--k", "3"], timeout: 300)
        XCTAssertEqual(other.status, 1, "\(other)")
        XCTAssertTrue(other.standardError.contains("k: 3 here, 2 in run.json"), other.standardError)
        // bf16 changes the numbers, so it is a setting too (fp32, the default, is recorded as none).
        let bf16 = try TestProcess.sccam(["demo", "--work", work] + Self.tinyDemo + ["--precision", "bf16"], timeout: 300)
        XCTAssertEqual(bf16.status, 1, "\(bf16)")
        XCTAssertTrue(bf16.standardError.contains("convolutionPrecision: bf16 here, none in run.json"), bf16.standardError)
        // The implementation is not: the im2col reference resumes the same run.
        let reference = try TestProcess.sccam(["demo", "--work", work] + Self.tinyDemo + ["--convolutions", "im2col"], timeout: 300)
        XCTAssertEqual(reference.status, 0, "\(reference)")
        XCTAssertTrue(reference.standardOutput.contains("26 already done"), reference.standardOutput)
        // Nor is oneDNN's algorithm, which changes rounding only, like the thread count.
        let direct = try TestProcess.sccam(["demo", "--work", work] + Self.tinyDemo + ["--convolution-algorithm", "direct"], timeout: 300)
        XCTAssertEqual(direct.status, 0, "\(direct)")
        XCTAssertTrue(direct.standardOutput.contains("26 already done"), direct.standardOutput)
        // An algorithm is a choice among oneDNN's kernels: with the im2col reference it is refused.
        let mixed = try TestProcess.sccam(["demo", "--work", work] + Self.tinyDemo
                                          + ["--convolutions", "im2col", "--convolution-algorithm", "winograd"], timeout: 300)
        XCTAssertEqual(mixed.status, 64, "\(mixed)")
        XCTAssertTrue(mixed.standardError.contains("--convolution-algorithm winograd chooses among oneDNN's kernels"),
                      mixed.standardError)
    }

    func testDemoRunsUnderMpirunOnTwoRanks() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-demo-mpi")
        defer { temporary.remove() }
        let work = temporary.path + "/demo"
        let result = try TestProcess.mpirun(ranks: 2, ["demo", "--work", work] + Self.tinyDemo, timeout: 900)
        try checkDemoOutputs(work, result)
        XCTAssertTrue(result.standardOutput.contains("over 2 rank(s)"), result.standardOutput)
    }

    private func pipelineArguments(voc: String, work: String, trainEpochs: Int = 1) -> [String] {
        ["pipeline", "--voc-root", voc, "--work", work, "--width-divisor", "16", "--rounds", "1", "--k", "2", "--batch", "4",
         "--baseline-epochs", "1", "--baseline-crop", "32", "--epochs", "\(trainEpochs)", "--crop", "32", "--long-side", "16,32",
         "--used-epochs", "\(trainEpochs - 1)", "--n-init", "2", "--scales", "1", "--threads", "1", "--log-every", "1",
         "--round-start", "baseline", "--no-refine"]
    }

    func testPipelineRunsThroughAHostfileOverTCP() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-hostfile")
        defer { temporary.remove() }
        let voc = try SyntheticVOC.make(at: temporary.path + "/voc", count: 16, width: 32, height: 32)
        let hostfile = temporary.path + "/hosts"
        // Each line is one slot; Open MPI refuses to mix that with slots=N.
        try "localhost\nlocalhost\n".write(toFile: hostfile, atomically: true, encoding: .utf8)
        let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/mpirun"
        let result = try TestProcess.run(mpirun, ["--hostfile", hostfile, "-np", "2", "--mca", "btl", "tcp,self", "--bind-to", "none",
                                                  TestProcess.sccam] + pipelineArguments(voc: voc.root, work: temporary.path + "/work"),
                                         timeout: 900)
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.standardOutput.contains("over 2 rank(s)"), result.standardOutput)
        XCTAssertTrue(result.standardOutput.contains("pipeline finished"), result.standardOutput)
        XCTAssertTrue(FileManager.default.fileExists(atPath: temporary.path + "/work/infer/R1/scores.json"))
    }

    /// With a trained baseline (psa's res38_cls.pth in real runs) there is no
    /// train R0; --round-start previous chains each round on the one before,
    /// and --init gives every other start its backbone.
    func testPipelineFromAGivenBaselineStartingEachRoundFromThePrevious() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-baseline")
        defer { temporary.remove() }
        let voc = try SyntheticVOC.make(at: temporary.path + "/voc", count: 16, width: 32, height: 32)
        let first = try TestProcess.sccam(pipelineArguments(voc: voc.root, work: temporary.path + "/first"), timeout: 600)
        XCTAssertEqual(first.status, 0, "\(first)")
        let baseline = temporary.path + "/first/weights/R0_ep0.safetensors"
        var arguments = pipelineArguments(voc: voc.root, work: temporary.path + "/second")
        arguments[arguments.firstIndex(of: "baseline")!] = "previous"
        arguments[arguments.firstIndex(of: "--rounds")! + 1] = "2"
        arguments[arguments.firstIndex(of: "--used-epochs")! + 1] = "0,0"
        let second = try TestProcess.sccam(arguments + ["--baseline", baseline, "--init", baseline], timeout: 600)
        XCTAssertEqual(second.status, 0, "\(second)")
        XCTAssertFalse(second.standardOutput.contains("train R0"), second.standardOutput)
        XCTAssertTrue(second.standardOutput.contains("[1/8] extract R0"), second.standardOutput)
        XCTAssertTrue(second.standardOutput.contains("starting from \(temporary.path)/second/weights/R1_ep0.safetensors"), second.standardOutput)
        let record = try String(contentsOfFile: temporary.path + "/second/run.json", encoding: .utf8)
        XCTAssertTrue(record.contains("\"baselineWeights\" : \"\(baseline.replacingOccurrences(of: "/", with: "\\/"))\""), record)
        XCTAssertTrue(FileManager.default.fileExists(atPath: temporary.path + "/second/infer/R2/scores.json"))
    }

    func testSIGTERMDuringTrainingThenRerunGivesTheUninterruptedWeights() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-pipeline-stop")
        defer { temporary.remove() }
        let voc = try SyntheticVOC.make(at: temporary.path + "/voc", count: 24, width: 32, height: 32)
        let straight = try TestProcess.sccam(pipelineArguments(voc: voc.root, work: temporary.path + "/straight", trainEpochs: 4), timeout: 900)
        XCTAssertEqual(straight.status, 0, "\(straight)")

        // Stop the second run in the middle of round 1's training.
        let work = temporary.path + "/interrupted"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestProcess.sccam)
        process.arguments = pipelineArguments(voc: voc.root, work: work, trainEpochs: 4)
        process.environment = TestProcess.cleanEnvironment()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let roundZeroSteps = try String(contentsOfFile: temporary.path + "/straight/logs/metrics.jsonl", encoding: .utf8)
            .split(separator: "\n").filter { $0.contains("\"loss_sub\":0.000000") }.count
        let deadline = Date().addingTimeInterval(300)
        var sent = false
        while Date() < deadline && process.isRunning {
            let lines = (try? String(contentsOfFile: "\(work)/logs/metrics.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0
            if lines >= roundZeroSteps + 3 {
                kill(process.processIdentifier, SIGTERM)
                sent = true
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.waitUntilExit()
        guard sent else { throw XCTSkip("round 1's training did not start in time") }
        XCTAssertEqual(process.terminationStatus, 4, "stopped with a checkpoint")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(work)/weights/R1_partial.safetensors"))

        let rerun = try TestProcess.sccam(pipelineArguments(voc: voc.root, work: work, trainEpochs: 4), timeout: 900)
        XCTAssertEqual(rerun.status, 0, "\(rerun)")
        XCTAssertTrue(rerun.standardOutput.contains("train R0: done in an earlier run, skipped"), rerun.standardOutput)
        XCTAssertTrue(rerun.standardOutput.contains("resuming"), rerun.standardOutput)
        let final = "weights/R1_ep3.safetensors"
        let resumedBytes = try Data(contentsOf: URL(fileURLWithPath: "\(work)/\(final)"))
        let straightBytes = try Data(contentsOf: URL(fileURLWithPath: "\(temporary.path)/straight/\(final)"))
        XCTAssertEqual(resumedBytes, straightBytes, "the resumed run must end with the uninterrupted run's weights")
    }
}
