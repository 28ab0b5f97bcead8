import Data
import Distributed
import Formats
import Foundation
import Pipeline
import TestSupport
import XCTest

/// A rank that dies (SIGKILL) in the middle of a 2-rank stage: the job ends
/// promptly with an error, leaves only complete outputs, and a rerun with
/// `--resume` finishes exactly as an uninterrupted run does.
final class DeadRankTests: XCTestCase {
    var temporary: TemporaryDirectory!

    override func setUpWithError() throws { temporary = try TemporaryDirectory(prefix: "sccam-dead-rank") }
    override func tearDown() { temporary.remove() }

    /// Kills rank 1 once `ready` holds; returns the seconds mpirun took to end and its status.
    func killRankOne(of job: BackgroundMPIJob, when ready: () -> Bool) throws -> (seconds: Double, status: Int32) {
        defer { job.stop() }
        guard BackgroundMPIJob.waitFor(120, ready) else {
            throw XCTSkip("the stage did not reach the point to kill in time:\n\(job.output)")
        }
        let victim = try XCTUnwrap(job.pid(ofRank: 1), "rank 1 not found:\n\(job.output)")
        let killed = Date()
        kill(victim, SIGKILL)
        let status = job.wait(timeout: 60)
        let seconds = Date().timeIntervalSince(killed)
        XCTAssertNotNil(status, "mpirun still runs 60 s after a rank died:\n\(job.output)")
        print(String(format: "%@: mpirun ended %.2f s after rank 1 was killed, exit %d", name, seconds, status ?? -1))
        return (seconds, status ?? -1)
    }

    /// Runs a 2-rank stage to the end in `WORK/straight`, then again in
    /// `WORK/killed`, SIGKILLing rank 1 once `ready(killed folder)` holds; checks
    /// the job then ends within 30 s with a non-zero exit. Returns both folders.
    func runStraightThenKilled(_ arguments: (String) -> [String], timeout: TimeInterval = 300,
                               ready: (String) -> Bool) throws -> (straight: String, killed: String) {
        let straight = temporary.path + "/straight", work = temporary.path + "/killed"
        let uninterrupted = try TestProcess.mpirun(ranks: 2, arguments(straight), timeout: timeout)
        XCTAssertEqual(uninterrupted.status, 0, "\(uninterrupted)")
        let job = try BackgroundMPIJob(ranks: 2, arguments(work), outputPath: temporary.path + "/killed.log")
        let (seconds, status) = try killRankOne(of: job) { ready(work) }
        XCTAssertNotEqual(status, 0, job.output)
        XCTAssertLessThan(seconds, 30, "the job must end within 30 s of a rank's death")
        return (straight, work)
    }

    private func safetensorsValues(_ path: String) throws -> [[UInt8]] { try Safetensors.read(path).tensors.map(\.payload) }

    func testTrainingSurvivesADeadRankAndResumesToTheSameWeights() throws {
        let voc = try TinyVOC.make(in: temporary.path)
        func arguments(_ work: String) -> [String] {
            ["train", "--voc-root", voc.root, "--work", work, "--round", "0", "--list", "train", "--width-divisor", "16",
             "--batch", "2", "--crop", "32", "--threads", "1", "--seed", "3", "--epochs", "40", "--log-every", "1",
             "--checkpoint-every", "1"]
        }
        let (straight, work) = try runStraightThenKilled(arguments, timeout: 600) { work in
            ((try? String(contentsOfFile: "\(work)/logs/metrics.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0) >= 10
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(work)/weights/R0_ep39.safetensors"), "killed before the end")
        let names = try FileManager.default.contentsOfDirectory(atPath: "\(work)/weights").filter { !$0.hasPrefix(".") }
        XCTAssertFalse(names.isEmpty)
        for name in names { XCTAssertNoThrow(try Safetensors.read("\(work)/weights/\(name)"), "\(name) must be complete") }

        let resumed = try TestProcess.mpirun(ranks: 2, arguments(work) + ["--resume"], timeout: 600)
        XCTAssertEqual(resumed.status, 0, "\(resumed)")
        XCTAssertTrue(resumed.standardOutput.contains("resuming"), resumed.standardOutput)
        XCTAssertEqual(try safetensorsValues("\(work)/weights/R0_ep39.safetensors"),
                       try safetensorsValues("\(straight)/weights/R0_ep39.safetensors"), "bit for bit")
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(work)/weights").filter { $0.contains(".tmp-") }
        XCTAssertEqual(left, [], "no temporaries survive a resumed run")
    }

    /// A dataset big enough that a 2-rank stage is still running when a rank is killed.
    private func dataset(size: Int = 160) throws -> SyntheticVOC {
        try SyntheticVOC.make(at: temporary.path + "/voc", count: 90, width: size, height: size, seed: 5, validationShare: 0)
    }

    func testExtractionSurvivesADeadRankAndResumes() throws {
        let voc = try dataset()
        func arguments(_ work: String) -> [String] {
            ["extract", "--voc-root", voc.root, "--list", "train", "--weights", ExtractCommandTests.weights, "--round", "1",
             "--work", work, "--threads", "1", "--checkpoint-every", "1"]
        }
        let part = { (work: String) in "\(work)/features/.R1_rank1_of_2.part.npy" }
        let (straight, work) = try runStraightThenKilled(arguments) { FileManager.default.fileExists(atPath: part($0)) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(work)/features/R1_features.npy"), "no final output after a kill")
        XCTAssertNoThrow(try NPY.read(part(work)), "the part file is complete")

        let resumed = try TestProcess.mpirun(ranks: 2, arguments(work) + ["--resume"])
        XCTAssertEqual(resumed.status, 0, "\(resumed)")
        XCTAssertTrue(resumed.standardOutput.contains("resuming:"), resumed.standardOutput)
        for file in ["R1_features.npy", "R1_labels.npy", "R1_images.txt"] {
            XCTAssertEqual(try AtomicFile.read("\(work)/features/\(file)"), try AtomicFile.read("\(straight)/features/\(file)"), file)
        }
    }

    func testInferenceSurvivesADeadRankAndResumes() throws {
        let voc = try dataset(size: 128)
        func arguments(_ work: String) -> [String] {
            ["infer", "--voc-root", voc.root, "--list", "train", "--weights", ExtractCommandTests.weights, "--work", work,
             "--threads", "1", "--scales", "1,0.5"]
        }
        func finished(_ work: String) -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(work)/cams")) ?? []).filter { $0.hasSuffix(".classes.npy") }.count
        }
        let (straight, work) = try runStraightThenKilled(arguments) { finished($0) >= 6 }
        XCTAssertLessThan(finished(work), voc.images.count, "killed before the end")

        let resumed = try TestProcess.mpirun(ranks: 2, arguments(work))
        XCTAssertEqual(resumed.status, 0, "\(resumed)")
        for image in voc.images {
            for file in ["cams/\(image.id).npy", "cams/\(image.id).classes.npy", "masks/\(image.id).png"] {
                XCTAssertEqual(try AtomicFile.read("\(work)/\(file)"), try AtomicFile.read("\(straight)/\(file)"), file)
            }
        }
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: work).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [], "temporaries of the killed writers are gone")
    }
}

extension DeadRankTests {
    func testAffinityLabelsSurviveADeadRankAndResume() throws {
        // Small images: the tests run the debug build, whose CRF is slow.
        let voc = try SyntheticVOC.make(at: temporary.path + "/voc", count: 40, width: 48, height: 48, seed: 5, validationShare: 0)
        let cams = temporary.path + "/cams"
        let infer = try TestProcess.mpirun(ranks: 2, ["infer", "--voc-root", voc.root, "--list", "train", "--weights", ExtractCommandTests.weights,
                                                      "--work", cams, "--threads", "1", "--scales", "1", "--no-overlays"])
        XCTAssertEqual(infer.status, 0, "\(infer)")
        func arguments(_ work: String) -> [String] {
            ["affinity-labels", "--voc-root", voc.root, "--list", "train", "--cams", cams + "/cams", "--work", work, "--threads", "1"]
        }
        func finished(_ work: String) -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: work + "/affinity")) ?? []).filter { $0.hasSuffix(".classes.npy") }.count
        }
        let (straight, work) = try runStraightThenKilled(arguments) { finished($0) >= 4 }
        XCTAssertLessThan(finished(work), voc.images.count, "killed before the end")

        let resumed = try TestProcess.mpirun(ranks: 2, arguments(work))
        XCTAssertEqual(resumed.status, 0, "\(resumed)")
        XCTAssertTrue(resumed.standardOutput.contains("already done"), resumed.standardOutput)
        for image in voc.images {
            for file in ["affinity/\(image.id).npy", "affinity/\(image.id).classes.npy"] {
                XCTAssertEqual(try AtomicFile.read("\(work)/\(file)"), try AtomicFile.read("\(straight)/\(file)"), file)
            }
        }
    }
}

final class WorkFolderTests: XCTestCase {
    func testStaleTemporariesAreRemovedAndLiveOnesAndOutputsKept() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-work-folder")
        defer { temporary.remove() }
        // A PID that runs no process, and one that does (a sleeping child).
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["30"]
        try sleeper.run()
        defer { sleeper.terminate() }
        var dead: pid_t = 4_000_000
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let files = [
            "weights/.R0_ep3.safetensors.tmp-\(dead)-12345": false,
            "cams/.2007_000032.npy.tmp-\(dead)-9": false,
            "cams/.2007_000039.npy.tmp-\(sleeper.processIdentifier)-7": true,
            "features/.R1_rank0_of_2.part.npy": true,
            "weights/R0_ep2.safetensors": true,
            "notes.tmp-\(dead)-1": true,
        ]
        for name in files.keys { try AtomicFile.write("x", to: "\(temporary.path)/\(name)") }
        let removed = try WorkFolder.prepare(WorkLayout(temporary.path), communicator: SingleProcessCommunicator())
        XCTAssertEqual(removed, 2)
        for (name, kept) in files {
            XCTAssertEqual(FileManager.default.fileExists(atPath: "\(temporary.path)/\(name)"), kept, name)
        }
    }

    /// Rank 1 gets a folder of its own (a private tmpfs over the work folder,
    /// in its own mount namespace): the stage must stop and say why.
    func testAWorkFolderNotSharedByEveryRankStopsTheStage() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-not-shared")
        defer { temporary.remove() }
        let probe = try TestProcess.run("/usr/bin/unshare", ["-m", "/bin/sh", "-c", "mount -t tmpfs tmpfs \(temporary.path)"])
        guard probe.status == 0 else { throw XCTSkip("mount namespaces are not available here: \(probe.standardError)") }
        let voc = try TinyVOC.make(in: temporary.path)
        let work = temporary.path + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let wrapper = temporary.path + "/private-work.sh"
        try AtomicFile.write("""
            #!/bin/sh
            # Rank 1 sees an empty private folder where the others see the shared one.
            if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then
              exec unshare -m /bin/sh -c 'mount -t tmpfs tmpfs "$0" && exec "$@"' "\(work)" "$@"
            fi
            exec "$@"

            """, to: wrapper)
        chmod(wrapper, 0o755)
        let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/mpirun"
        let result = try TestProcess.run(mpirun, ["-np", "2", "--oversubscribe", "--bind-to", "none", wrapper, TestProcess.sccam,
                                                  "extract", "--voc-root", voc.root, "--list", "train", "--weights", ExtractCommandTests.weights,
                                                  "--work", work, "--threads", "1"], timeout: 120)
        XCTAssertNotEqual(result.status, 0, "\(result)")
        let host = ProcessInfo.processInfo.hostName
        XCTAssertTrue(result.standardError.contains("the work folder \(work) is not shared by all ranks"), result.standardError)
        XCTAssertTrue(result.standardError.contains("rank 1 on \(host) does not see"), result.standardError)
        XCTAssertTrue(result.standardError.contains("a file system all nodes mount"), result.standardError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(work)/features/R1_features.npy"))
        // The same launch with every rank on the shared folder works.
        let shared = try TestProcess.mpirun(ranks: 2, ["extract", "--voc-root", voc.root, "--list", "train", "--weights",
                                                       ExtractCommandTests.weights, "--work", work, "--threads", "1"])
        XCTAssertEqual(shared.status, 0, "\(shared)")
    }

    /// Two ranks given different --work folders on one file system: each could
    /// read the other's token, so the check must compare the folders themselves.
    func testRanksGivenDifferentWorkFoldersAreRefusedNamingBoth() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-two-folders")
        defer { temporary.remove() }
        let voc = try TinyVOC.make(in: temporary.path)
        for rank in 0..<2 { try FileManager.default.createDirectory(atPath: "\(temporary.path)/rank\(rank)", withIntermediateDirectories: true) }
        let wrapper = temporary.path + "/own-folder.sh"
        // Each rank starts in a folder of its own, so the relative --work names two folders.
        try AtomicFile.write("""
            #!/bin/sh
            cd "\(temporary.path)/rank$OMPI_COMM_WORLD_RANK" && exec "$@"

            """, to: wrapper)
        chmod(wrapper, 0o755)
        let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/mpirun"
        let result = try TestProcess.run(mpirun, ["-np", "2", "--oversubscribe", "--bind-to", "none", wrapper, TestProcess.sccam,
                                                  "extract", "--voc-root", voc.root, "--list", "train", "--weights", ExtractCommandTests.weights,
                                                  "--work", "work", "--threads", "1"], timeout: 120)
        XCTAssertNotEqual(result.status, 0, "\(result)")
        let host = ProcessInfo.processInfo.hostName
        XCTAssertTrue(result.standardError.contains("the ranks were given different work folders"), result.standardError)
        XCTAssertTrue(result.standardError.contains("rank 1 on \(host) works in \(temporary.path)/rank1/work, rank 0 in \(temporary.path)/rank0/work"),
                      result.standardError)
        XCTAssertTrue(result.standardError.contains("give every rank the same --work"), result.standardError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(temporary.path)/rank0/work/features/R1_features.npy"))
    }
}
