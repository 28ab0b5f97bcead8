import Distributed
import Foundation
import TestSupport
import XCTest

/// Decoded subset of `sccam env --json`.
struct EnvJSON: Decodable {
    struct Rank: Decodable {
        struct Collectives: Decodable {
            let allreduceFloat: [Float]
            let allreduceDouble: [Double]
            let allreduceMax: [Int32]
            let broadcast: [Float]
            let broadcastText: String
            let allgather: [String]
            let largeAllreduceMismatches: Int
            let exchangeMismatches: [String: Int]
            let failures: [String]
        }
        let rank: Int
        let pid: Int
        let threads: Int
        let oneDNNVersion: String
        let oneDNNInstructionSet: String
        let oneDNNThreads: Int
        let collectives: Collectives?
    }
    let size: Int
    let transport: String
    let ranks: [Rank]
    let gathered: [[Float]]?
}

final class LaunchTests: XCTestCase {
    private func decodeEnv(_ result: ProcessResult) throws -> EnvJSON {
        XCTAssertEqual(result.status, 0, "\(result)")
        return try JSONDecoder().decode(EnvJSON.self, from: Data(result.standardOutput.utf8))
    }

    func testTwoRanksUnderMPIRunAgreeOnEveryCollective() throws {
        let result = try TestProcess.mpirun(ranks: 2, ["env", "--check-collectives", "--json", "--probe-seconds", "0"])
        let env = try decodeEnv(result)
        XCTAssertEqual(env.size, 2)
        XCTAssertTrue(env.transport.hasPrefix("MPI"), env.transport)
        XCTAssertEqual(env.ranks.map(\.rank), [0, 1])
        XCTAssertNotEqual(env.ranks[0].pid, env.ranks[1].pid, "two ranks must be two processes")
        for rank in env.ranks {
            // oneDNN's OpenMP threads follow the rank's share of the cores, as OpenBLAS's do.
            XCTAssertEqual(rank.oneDNNThreads, rank.threads)
            XCTAssertTrue(rank.oneDNNVersion.hasPrefix("2."), rank.oneDNNVersion)
            XCTAssertFalse(rank.oneDNNInstructionSet.isEmpty)
        }
        for rank in env.ranks {
            let check = try XCTUnwrap(rank.collectives)
            // Rank r contributed [r + 1, 10 (r + 1), 0.25], [r + 0.5] and [r, -r].
            XCTAssertEqual(check.allreduceFloat, [3, 30, 0.5])
            XCTAssertEqual(check.allreduceDouble, [2.0])
            XCTAssertEqual(check.allreduceMax, [1, 0])
            XCTAssertEqual(check.broadcast, [3.5, -1, 42])
            XCTAssertEqual(check.broadcastText, "hello from rank 0")
            XCTAssertEqual(check.allgather, ["ank 0", "rank 1"])
            XCTAssertEqual(check.largeAllreduceMismatches, 0)
            XCTAssertEqual(check.exchangeMismatches, ["fp32 polled": 0, "fp32 blocking": 0, "bf16 polled": 0, "bf16 blocking": 0])
            XCTAssertEqual(check.failures, [])
        }
        XCTAssertEqual(env.gathered, [[0], [1, 1]])
    }

    func testRunsAsOneRankWithoutALauncher() throws {
        let env = try decodeEnv(try TestProcess.sccam(["env", "--check-collectives", "--json", "--probe-seconds", "0"]))
        XCTAssertEqual(env.size, 1)
        XCTAssertTrue(env.transport.contains("single process"), env.transport)
        let check = try XCTUnwrap(env.ranks.first?.collectives)
        XCTAssertEqual(check.allreduceFloat, [1, 10, 0.25])
        XCTAssertEqual(check.allgather, ["ank 0"])
        XCTAssertEqual(check.failures, [])
        XCTAssertEqual(env.gathered, [[0]])
    }

    func testEnvUnderMPIRunPrintsEveryRankInOrderThroughRankZero() throws {
        let result = try TestProcess.mpirun(ranks: 2, ["env", "--probe-seconds", "0.2", "--probe-size", "256"])
        XCTAssertEqual(result.status, 0, "\(result)")
        let output = result.standardOutput
        XCTAssertEqual(output.components(separatedBy: "sccam 0.").count - 1, 1, "only rank 0 prints the header")
        let rank0 = try XCTUnwrap(output.range(of: "rank 0 on "))
        let rank1 = try XCTUnwrap(output.range(of: "rank 1 on "))
        XCTAssertLessThan(rank0.lowerBound, rank1.lowerBound)
        XCTAssertEqual(output.components(separatedBy: "GFLOP/s").count - 1, 2, output)
        XCTAssertTrue(output.contains("MPI library   Open MPI"), output)
    }

    func testRefusesSlurmTasksStartedWithoutMPI() throws {
        let environment = TestProcess.cleanEnvironment(adding: ["SLURM_JOB_ID": "42", "SLURM_NTASKS": "4"])
        let result = try TestProcess.sccam(["env", "--probe-seconds", "0"], environment: environment)
        XCTAssertEqual(result.status, 3, "\(result)")
        XCTAssertTrue(result.standardError.contains("SLURM_NTASKS=4"), result.standardError)
        XCTAssertTrue(result.standardError.contains("srun --mpi=pmix"), result.standardError)
        XCTAssertEqual(result.standardOutput, "")
    }

    func testRefusesAnMPIWorldSmallerThanAnnounced() throws {
        // What a broken PMI gives: the launcher says 4, MPI_Init makes a singleton.
        let environment = TestProcess.cleanEnvironment(adding: ["OMPI_COMM_WORLD_SIZE": "4"])
        let result = try TestProcess.sccam(["env", "--probe-seconds", "0"], environment: environment)
        XCTAssertEqual(result.status, 3, "\(result)")
        XCTAssertTrue(result.standardError.contains("world of 1"), result.standardError)
    }

    func testSingleRankInsideAnAllocationCanBeAskedFor() throws {
        let environment = TestProcess.cleanEnvironment(
            adding: ["SLURM_JOB_ID": "42", "SLURM_NTASKS": "4", "SCCAM_ALLOW_SINGLE_RANK": "1"])
        let result = try TestProcess.sccam(["env", "--probe-seconds", "0"], environment: environment)
        XCTAssertEqual(result.status, 0, "\(result)")
    }

    func testHelpExplainsTheCommands() throws {
        let root = try TestProcess.sccam(["--help"])
        XCTAssertEqual(root.status, 0)
        XCTAssertTrue(root.standardOutput.contains("env"), root.standardOutput)
        let env = try TestProcess.sccam(["env", "--help"])
        for flag in ["--threads", "--probe-seconds", "--check-collectives", "--json"] {
            XCTAssertTrue(env.standardOutput.contains(flag), "env --help lacks \(flag)")
        }
        let bad = try TestProcess.sccam(["env", "--threads", "0"])
        XCTAssertEqual(bad.status, 64, "\(bad)")  // ArgumentParser's usage error
    }
}

final class LaunchEnvironmentTests: XCTestCase {
    func testAnnouncedSizePrefersTheLauncherOverTheAllocation() {
        let environment = LaunchEnvironment(variables: [
            "OMPI_COMM_WORLD_SIZE": "1", "SLURM_JOB_ID": "7", "SLURM_NTASKS": "8",
        ])
        XCTAssertEqual(environment.announcedWorldSize?.count, 1)
        XCTAssertTrue(environment.startedByMPILauncher)
    }

    func testSrunStepSizeIsUsed() {
        let environment = LaunchEnvironment(variables: ["SLURM_STEP_NUM_TASKS": "3", "PMIX_RANK": "0"])
        XCTAssertEqual(environment.announcedWorldSize?.count, 3)
        XCTAssertEqual(environment.announcedWorldSize?.source, "SLURM_STEP_NUM_TASKS")
    }

    func testPlainShellAnnouncesNothing() {
        let environment = LaunchEnvironment(variables: ["HOME": "/root"])
        XCTAssertNil(environment.announcedWorldSize)
        XCTAssertFalse(environment.startedByMPILauncher)
    }

    func testSingleProcessCollectivesAreIdentities() throws {
        let communicator = SingleProcessCommunicator()
        var values: [Float] = [1, 2, 3]
        try communicator.allreduceSum(&values)
        XCTAssertEqual(values, [1, 2, 3])
        XCTAssertEqual(try communicator.gather([4, 5] as [Float], root: 0), [[4, 5]])
        XCTAssertEqual(try communicator.allgather(string: "x"), ["x"])
        XCTAssertEqual(try communicator.broadcast(string: "y", root: 0), "y")
        XCTAssertThrowsError(try communicator.gather([1] as [Float], root: 1))
        try values.withUnsafeMutableBufferPointer { buffer in
            let exchange = try GradientExchange(communicator: communicator, gradients: buffer)
            exchange.beginStep()
            exchange.gradientsReady(from: 0)
            XCTAssertEqual(try exchange.finishStep(), 0)
            exchange.close()
        }
        XCTAssertEqual(values, [1, 2, 3])
    }
}
