import Foundation
import Kernels
import TestSupport
import XCTest

/// The parts of `sccam env --json` these tests read.
private struct EnvJSON: Decodable {
    struct Rank: Decodable {
        let cpuVectorLevel: String
        let blasCore: String
        let blasCoreVectorLevel: String
        let blasCoreSelection: String
        let threads: Int
    }
    let ranks: [Rank]
}

final class BLASCoreTests: XCTestCase {
    private func env(_ result: ProcessResult) throws -> EnvJSON {
        XCTAssertEqual(result.status, 0, "\(result)")
        return try JSONDecoder().decode(EnvJSON.self, from: Data(result.standardOutput.utf8))
    }

    private var cpuLevel: VectorLevel { CPUFeatures.current().vectorLevel }

    func testCoreInUseMatchesTheCPUsVectorExtensions() throws {
        let report = try env(try TestProcess.sccam(["env", "--json", "--probe-seconds", "0"]))
        let rank = try XCTUnwrap(report.ranks.first)
        XCTAssertEqual(rank.blasCoreVectorLevel, cpuLevel.description,
                       "OpenBLAS runs \(rank.blasCore) on a \(rank.cpuVectorLevel) CPU (\(rank.blasCoreSelection))")
    }

    func testMisdetectedCoreIsReplacedByReexecution() throws {
        try XCTSkipIf(cpuLevel == .sse, "this CPU has only SSE kernels; nothing to fix")
        // Make OpenBLAS load with the generic core, and tell the program to treat
        // that as OpenBLAS's own (mis)detection rather than the user's choice.
        let environment = TestProcess.cleanEnvironment(adding: [
            "OPENBLAS_CORETYPE": "Prescott", BLASCoreSelection.simulateVariable: "1",
        ])
        let rank = try XCTUnwrap(try env(try TestProcess.sccam(["env", "--json", "--probe-seconds", "0"],
                                                              environment: environment)).ranks.first)
        XCTAssertEqual(rank.blasCoreVectorLevel, cpuLevel.description, rank.blasCoreSelection)
        XCTAssertTrue(rank.blasCoreSelection.contains("had picked Prescott"), rank.blasCoreSelection)
    }

    func testMisdetectedCoreIsReplacedOnEveryRankUnderMPIRun() throws {
        try XCTSkipIf(cpuLevel == .sse, "this CPU has only SSE kernels; nothing to fix")
        let environment = TestProcess.cleanEnvironment(adding: [
            "OPENBLAS_CORETYPE": "Prescott", BLASCoreSelection.simulateVariable: "1",
        ])
        let report = try env(try TestProcess.mpirun(
            ranks: 2, ["env", "--json", "--probe-seconds", "0"], environment: environment,
            exporting: ["OPENBLAS_CORETYPE", BLASCoreSelection.simulateVariable]))
        XCTAssertEqual(report.ranks.count, 2)
        for rank in report.ranks {
            XCTAssertEqual(rank.blasCoreVectorLevel, cpuLevel.description, rank.blasCoreSelection)
        }
    }

    func testUsersOwnCoreTypeWins() throws {
        let environment = TestProcess.cleanEnvironment(adding: ["OPENBLAS_CORETYPE": "Prescott"])
        let rank = try XCTUnwrap(try env(try TestProcess.sccam(["env", "--json", "--probe-seconds", "0"],
                                                              environment: environment)).ranks.first)
        XCTAssertEqual(rank.blasCore, "Prescott")
        XCTAssertTrue(rank.blasCoreSelection.contains("set by the user"), rank.blasCoreSelection)
    }

    func testThreadsFlagSetsOpenBLASThreads() throws {
        let rank = try XCTUnwrap(try env(try TestProcess.sccam(["env", "--json", "--probe-seconds", "0", "--threads", "1"]))
            .ranks.first)
        XCTAssertEqual(rank.threads, 1)
    }

    func testDecisionRules() {
        let intel512 = CPUFeatures(vendor: "GenuineIntel", modelName: "x",
                                   flags: ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"])
        let amd2 = CPUFeatures(vendor: "AuthenticAMD", modelName: "y", flags: ["avx", "avx2", "fma"])
        XCTAssertEqual(BLASCoreSelection.decide(environment: [:], currentCore: "Prescott", cpu: intel512),
                       .reexecute(core: "SkylakeX", misdetected: "Prescott"))
        XCTAssertEqual(BLASCoreSelection.decide(environment: [:], currentCore: "Haswell", cpu: intel512),
                       .reexecute(core: "SkylakeX", misdetected: "Haswell"))
        XCTAssertEqual(BLASCoreSelection.decide(environment: [:], currentCore: "Prescott", cpu: amd2),
                       .reexecute(core: "Zen", misdetected: "Prescott"))
        guard case .keep = BLASCoreSelection.decide(environment: [:], currentCore: "Zen", cpu: amd2) else {
            return XCTFail("a correct detection must be kept")
        }
        guard case .keep = BLASCoreSelection.decide(environment: ["OPENBLAS_CORETYPE": "Prescott"],
                                                    currentCore: "Prescott", cpu: intel512) else {
            return XCTFail("the user's OPENBLAS_CORETYPE must win")
        }
        guard case .keep = BLASCoreSelection.decide(environment: [BLASCoreSelection.markerVariable: "Prescott"],
                                                    currentCore: "Prescott", cpu: intel512) else {
            return XCTFail("a re-executed process must never re-execute again")
        }
    }

    func testCPUInfoParsing() {
        let text = """
            processor\t: 0
            vendor_id\t: GenuineIntel
            model name\t: Intel(R) Xeon(R) Platinum
            flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl

            processor\t: 1
            vendor_id\t: GenuineIntel
            flags\t\t: fpu sse
            """
        let cpu = CPUFeatures.parse(cpuinfo: text)
        XCTAssertEqual(cpu.vendor, "GenuineIntel")
        XCTAssertEqual(cpu.modelName, "Intel(R) Xeon(R) Platinum")
        XCTAssertEqual(cpu.vectorLevel, .avx512)
        XCTAssertEqual(CPUFeatures.parse(cpuinfo: "flags : sse avx2").vectorLevel, .sse, "AVX2 without FMA is not enough")
    }

    func testThreadPolicyOrder() {
        XCTAssertEqual(ThreadPolicy.choose(requested: 3, ranksOnThisNode: 2, environment: ["OMP_NUM_THREADS": "5"]).count, 3)
        XCTAssertEqual(ThreadPolicy.choose(requested: nil, ranksOnThisNode: 2, environment: ["OMP_NUM_THREADS": "5"]).count, 5)
        let shared = ThreadPolicy.choose(requested: nil, ranksOnThisNode: 64, environment: [:])
        XCTAssertEqual(shared.count, 1, "never fewer than one thread")
    }
}

final class GEMMTests: XCTestCase {
    /// sgemm against a plain triple loop, in every transpose combination and
    /// with a non-trivial beta and leading dimensions wider than the matrices.
    func testSGEMMMatchesNaiveProduct() {
        let m = 5, n = 7, k = 3
        var generator = SystemRandomNumberGenerator()
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                let lda = (transposeA ? m : k) + 2, ldb = (transposeB ? k : n) + 1, ldc = n + 3
                let a = (0..<((transposeA ? k : m) * lda)).map { _ in Float.random(in: -1...1, using: &generator) }
                let b = (0..<((transposeB ? n : k) * ldb)).map { _ in Float.random(in: -1...1, using: &generator) }
                var c = (0..<(m * ldc)).map { _ in Float.random(in: -1...1, using: &generator) }
                var expected = c
                for i in 0..<m {
                    for j in 0..<n {
                        var sum: Float = 0
                        for p in 0..<k {
                            let aValue = transposeA ? a[p * lda + i] : a[i * lda + p]
                            let bValue = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                            sum += aValue * bValue
                        }
                        expected[i * ldc + j] = 0.5 * sum + 2 * c[i * ldc + j]
                    }
                }
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        c.withUnsafeMutableBufferPointer { c in
                            sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5,
                                  a: a.baseAddress!, lda: lda, b: b.baseAddress!, ldb: ldb,
                                  beta: 2, c: c.baseAddress!, ldc: ldc)
                        }
                    }
                }
                for i in 0..<m {
                    for j in 0..<n {
                        XCTAssertEqual(c[i * ldc + j], expected[i * ldc + j], accuracy: 1e-5,
                                       "transposeA \(transposeA) transposeB \(transposeB) at (\(i), \(j))")
                    }
                    for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], expected[i * ldc + j], "padding must be untouched") }
                }
            }
        }
    }
}
