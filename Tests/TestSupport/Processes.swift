import Foundation

/// The outcome of a finished child process.
public struct ProcessResult: CustomStringConvertible {
    public let status: Int32
    public let standardOutput: String
    public let standardError: String
    public let timedOut: Bool

    public var description: String {
        "exit \(status)\(timedOut ? " (timed out)" : "")\n--- stdout\n\(standardOutput)\n--- stderr\n\(standardError)"
    }
}

public enum TestProcess {
    /// The `sccam` binary built beside the test bundle.
    public static var sccam: String {
        if let explicit = ProcessInfo.processInfo.environment["SCCAM_BINARY"] { return explicit }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return me.deletingLastPathComponent().appendingPathComponent("sccam").path
    }

    /// This environment without anything an MPI process or Slurm exported:
    /// a child `mpirun` that inherits a parent's OMPI_/PMIX_ variables exits 1
    /// and prints nothing. Also drops user BLAS settings, so the tests see
    /// OpenBLAS's own choice, and allows mpirun as root (tests only).
    public static func cleanEnvironment(adding extra: [String: String] = [:]) -> [String: String] {
        let droppedPrefixes = ["OMPI_", "PMIX_", "ORTE_", "PMI_", "SLURM_", "OPAL_", "HYDRA_"]
        let droppedNames: Set = ["OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "SCCAM_THREADS",
                                 "SCCAM_BLAS_CORE_FIXED_FROM", "SCCAM_SIMULATE_MISDETECTED_BLAS_CORE",
                                 "SCCAM_ALLOW_SINGLE_RANK"]
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !droppedNames.contains(key) && !droppedPrefixes.contains { key.hasPrefix($0) }
        }
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        for (key, value) in extra { environment[key] = value }
        return environment
    }

    /// Runs a program to completion (killing it after `timeout` seconds),
    /// capturing its output through files so that neither pipe can fill up.
    public static func run(_ executable: String, _ arguments: [String],
                           environment: [String: String] = cleanEnvironment(),
                           timeout: TimeInterval = 300) throws -> ProcessResult {
        let directory = try TemporaryDirectory(prefix: "sccam-process")
        defer { directory.remove() }
        let outURL = URL(fileURLWithPath: directory.path + "/stdout")
        let errURL = URL(fileURLWithPath: directory.path + "/stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                process.terminate()
                Thread.sleep(forTimeInterval: 1)
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.waitUntilExit()
        try out.close()
        try err.close()
        return ProcessResult(
            status: process.terminationStatus,
            standardOutput: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            standardError: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "",
            timedOut: timedOut)
    }

    /// Runs the built `sccam` alone (no launcher).
    public static func sccam(_ arguments: [String], environment: [String: String] = cleanEnvironment(),
                             timeout: TimeInterval = 300) throws -> ProcessResult {
        try run(sccam, arguments, environment: environment, timeout: timeout)
    }

    /// Runs the built `sccam` under `mpirun -np ranks` on this machine. The
    /// oversubscribe flag belongs here, in the tests: this machine may have
    /// fewer cores than ranks.
    public static func mpirun(ranks: Int, _ arguments: [String], environment: [String: String] = cleanEnvironment(),
                              exporting exported: [String] = [], timeout: TimeInterval = 300) throws -> ProcessResult {
        let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? "/usr/bin/mpirun"
        var launcherArguments = ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none"]
        for name in exported { launcherArguments += ["-x", name] }
        return try run(mpirun, launcherArguments + [sccam] + arguments, environment: environment, timeout: timeout)
    }

    public static var hasNumPy: Bool {
        (try? run("/usr/bin/env", ["python3", "-c", "import numpy"], timeout: 60).status) == 0
    }
}

/// An `mpirun` started in the background, whose ranks a test can find and
/// kill one by one (fault tests).
public final class BackgroundMPIJob {
    public let process = Process()
    public let outputPath: String

    public init(ranks: Int, _ arguments: [String], launcherArguments: [String] = [], outputPath: String) throws {
        let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? "/usr/bin/mpirun"
        self.outputPath = outputPath
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.executableURL = URL(fileURLWithPath: mpirun)
        process.arguments = ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none"] + launcherArguments + [TestProcess.sccam] + arguments
        process.environment = TestProcess.cleanEnvironment()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// The PID of the `sccam` process that is world rank `rank` of this job
    /// (found through /proc: a descendant of mpirun with that rank in its environment).
    public func pid(ofRank rank: Int) -> pid_t? {
        let root = process.processIdentifier
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for entry in entries {
            guard let pid = pid_t(entry), pid != root, isDescendant(pid, of: root),
                  let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
            let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            if variables.contains("OMPI_COMM_WORLD_RANK=\(rank)"), command.contains("sccam") { return pid }
        }
        return nil
    }

    private func isDescendant(_ pid: pid_t, of ancestor: pid_t) -> Bool {
        var current = pid
        for _ in 0..<16 {
            guard let stat = try? String(contentsOfFile: "/proc/\(current)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, let parent = pid_t(fields[1]) else { return false }
            if parent == ancestor { return true }
            if parent <= 1 { return false }
            current = parent
        }
        return false
    }

    /// Waits up to `timeout` seconds for mpirun to end; nil if it did not.
    public func wait(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { return nil }
        return process.terminationStatus
    }

    /// Ends the job and all its ranks (cleanup after a failed test).
    public func stop() {
        guard process.isRunning else { return }
        for rank in 0..<16 { if let pid = pid(ofRank: rank) { kill(pid, SIGKILL) } }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Polls `condition` every 20 ms for up to `timeout` seconds.
    public static func waitFor(_ timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }
}

extension TestProcess {
    /// Starts a training command in the background and returns it once
    /// `work/logs/metrics.jsonl` has `steps` lines (nil if that takes over two minutes;
    /// the process is then terminated).
    public static func startTraining(_ arguments: [String], work: String, steps: Int) throws -> Process? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: sccam)
        process.arguments = arguments
        process.environment = cleanEnvironment()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let lines = (try? String(contentsOfFile: "\(work)/logs/metrics.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0
            if lines >= steps { return process }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.terminate()
        return nil
    }
}
