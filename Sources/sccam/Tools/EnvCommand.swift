import ArgumentParser
import Benchmarks
import Pipeline
import Foundation

struct Env: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what this run would compute with, on every rank.",
        discussion: """
            Shows the version, the MPI library, the ranks, OpenBLAS's build and the kernels ("core") \
            it runs with how that was chosen, the threads per rank, oneDNN's version, the instruction set its \
            convolutions dispatch to, its OpenMP threads, how bf16 runs and whether it has Winograd kernels, \
            and a short sgemm measurement \
            on each rank; then, from rank 0, which kernel every convolution of the full-width ResNet-38 (at \
            224) and DeepLab-v2 (at 321) runs on with the convolution flags given. Run it under the same launcher as a real job to check a cluster set-up; \
            add --check-collectives to also verify MPI transfers between the ranks.
            """)

    @OptionGroup var compute: ComputeOptions

    @Option(help: "Seconds of sgemm measurement per rank (0 skips it).") var probeSeconds: Double = 1.0
    @Option(help: "Matrix size of the sgemm measurement (n x n times n x n).") var probeSize: Int = 2048
    @Flag(help: "Verify allreduce, broadcast, gather and allgather results across the ranks.") var checkCollectives = false
    @Flag(help: "Print one JSON document instead of text.") var json = false
    @Flag(help: "Leave out the per-layer kernels of the full-width networks.") var noKernels = false

    func validate() throws {
        guard probeSeconds >= 0 else { throw ValidationError("--probe-seconds must be 0 or more") }
        guard probeSize >= 16 else { throw ValidationError("--probe-size must be at least 16") }
    }

    func run() throws {
        let job = Job.start(compute)
        job.run {
            let communicator = job.communicator
            var mine = RankReport(
                rank: communicator.rank, localRank: communicator.localRank, host: hostName(),
                pid: Int(getpid()), cpu: CPUFeatures.current().modelName,
                cpuVectorLevel: CPUFeatures.current().vectorLevel.description,
                blasCore: BLASRuntime.coreName,
                blasCoreVectorLevel: BLASRuntime.vectorLevel(ofCore: BLASRuntime.coreName).description,
                blasCoreSelection: BLASCoreSelection.report(), threads: BLASRuntime.threadCount,
                threadsReason: job.threads.reason,
                oneDNNVersion: DNNLRuntime.version, oneDNNInstructionSet: DNNLRuntime.instructionSet,
                oneDNNThreads: DNNLRuntime.threadCount, oneDNNBFloat16: DNNLRuntime.bfloat16Mode,
                oneDNNWinograd: DNNLRuntime.winogradMode, sgemmSize: nil, sgemmGFLOPS: nil, collectives: nil)
            if probeSeconds > 0 {
                mine.sgemmSize = probeSize
                mine.sgemmGFLOPS = GEMMProbe.measure(size: probeSize, seconds: probeSeconds).gflops
            }
            var gathered: [[Float]]? = nil
            if checkCollectives {
                let check = try CollectiveCheck.run(communicator)
                mine.collectives = check.rank
                gathered = check.gathered
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let line = String(decoding: try encoder.encode(mine), as: UTF8.self)
            guard let lines = try communicator.gather(string: line, root: 0) else { return }
            let ranks = try lines.map { try JSONDecoder().decode(RankReport.self, from: Data($0.utf8)) }
            let report = EnvReport(
                version: SCCAM.version, mpiLibrary: MPICommunicator.libraryVersion(),
                transport: communicator.transportDescription, size: communicator.size,
                blasConfiguration: BLASRuntime.configuration, ranks: ranks, gathered: gathered,
                engine: job.compute.convolutionEngine.description,
                kernels: noKernels ? nil : LayerKernelTable.referenceNetworks(on: job.compute).map { EnvReport.KernelTable(network: $0.title, layers: $0.rows) })
            if json {
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
                job.log(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                job.log(report.text)
            }
        }
    }
}

struct RankReport: Codable {
    var rank: Int
    var localRank: Int
    var host: String
    var pid: Int
    var cpu: String
    var cpuVectorLevel: String
    var blasCore: String
    var blasCoreVectorLevel: String
    var blasCoreSelection: String
    var threads: Int
    var threadsReason: String
    var oneDNNVersion: String
    var oneDNNInstructionSet: String
    var oneDNNThreads: Int
    var oneDNNBFloat16: String
    var oneDNNWinograd: String
    var sgemmSize: Int?
    var sgemmGFLOPS: Double?
    var collectives: CollectiveCheck.RankResult?
}

struct EnvReport: Codable {
    var version: String
    var mpiLibrary: String
    var transport: String
    var size: Int
    var blasConfiguration: String
    var ranks: [RankReport]
    /// Rank 0's result of the variable-length gather check.
    var gathered: [[Float]]?
    /// How the networks compute their convolutions here, and rank 0's kernel per layer shape.
    var engine: String
    var kernels: [KernelTable]?

    struct KernelTable: Codable {
        var network: String
        var layers: [LayerKernelTable.Row]
    }

    var text: String {
        var lines = [
            "sccam \(version)",
            "MPI library   \(mpiLibrary)",
            "transport     \(transport)",
            "ranks         \(size)",
            "OpenBLAS      \(blasConfiguration)",
        ]
        for rank in ranks {
            lines.append("rank \(rank.rank) on \(rank.host) (pid \(rank.pid), local rank \(rank.localRank))")
            lines.append("  CPU         \(rank.cpu) (\(rank.cpuVectorLevel))")
            lines.append("  BLAS core   \(rank.blasCoreSelection)")
            lines.append("  threads     \(rank.threads) (\(rank.threadsReason))")
            lines.append("  oneDNN      \(rank.oneDNNVersion), dispatching to \(rank.oneDNNInstructionSet), \(rank.oneDNNThreads) OpenMP thread(s); bf16 \(rank.oneDNNBFloat16); \(rank.oneDNNWinograd)")
            if let gflops = rank.sgemmGFLOPS, let size = rank.sgemmSize {
                lines.append("  sgemm       \(String(format: "%.1f", gflops)) GFLOP/s (\(size)x\(size), \(rank.threads) threads)")
            }
            if let check = rank.collectives {
                lines.append("  collectives \(check.passed ? "ok" : "FAILED: \(check.failures.joined(separator: "; "))")")
            }
        }
        lines.append("convolutions  \(engine)")
        for table in kernels ?? [] {
            lines.append("kernels of \(table.network), rank 0, forward:")
            lines.append(LayerKernelTable.text(table.layers, engines: ["kernel"]).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        }
        return lines.joined(separator: "\n")
    }
}

func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count - 1)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
