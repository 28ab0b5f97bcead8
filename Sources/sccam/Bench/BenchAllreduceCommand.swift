import ArgumentParser
import Pipeline
import Benchmarks
import Foundation

struct BenchAllreduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Bus bandwidth of every way to sum a gradient bucket, per bucket size, against the link.",
        discussion: """
            Run it under mpirun with the ranks and hosts training will use. First the link: each even rank \
            sends 32 MB to the next (0 to 1, 2 to 3, ...), all pairs at once, and the slowest pair's \
            bandwidth is printed. Then, for each bucket size, every variant \
            sums the bucket in place across all ranks: the blocking MPI_Allreduce with each algorithm of \
            Open MPI's tuned component (basic linear, non-overlapping, recursive doubling, ring, segmented \
            ring, Rabenseifner, and its own choice), the polled MPI_Iallreduce the gradient exchange runs \
            with each algorithm of libnbc (ring, binomial, Rabenseifner, recursive doubling, and its own \
            choice), all forced one by one through the MPI tool interface, and the bf16 wire format \
            (all-to-all of bfloat16 blocks, float32 sums, all-gather), polled. Bus \
            bandwidth is nccl-tests' 2(p-1)/p x bytes / time, the rate one rank's link carries, so a \
            variant at the link's bandwidth is as fast as the link allows; bf16 counts the float32 bytes \
            it stands for and can pass the link. Times are the slowest rank's. \
            --mca btl tcp,self on mpirun measures TCP instead of shared memory. docs/scaling.md says how \
            the defaults were chosen from it.
            """)

    @OptionGroup var threads: ThreadOptions

    @Option(help: "Comma-separated bucket sizes in MB.") var sizes: String = "1,2,4,8,16,32,64"
    @Option(help: "Timed iterations per size (after one warm-up); the best and the median are kept.") var iterations: Int = 5
    @Flag(help: "Measure only the library's own choice of algorithm, blocking and polled, and bf16.") var noLibraryAlgorithms = false
    @Option(help: "Also write the report as JSON to this file.") var json: String?

    var sizeList: [Int] { sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard !sizeList.isEmpty, sizeList.count == sizes.split(separator: ",").count, sizeList.allSatisfy({ (1...1024).contains($0) }) else {
            throw ValidationError("--sizes must list bucket sizes in MB between 1 and 1024, like 1,4,16,64")
        }
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
    }

    func run() throws {
        // Open MPI obeys a forced algorithm only with dynamic rules, read at MPI_Init.
        let variable = LibraryAllreduceAlgorithms.dynamicRulesVariable
        if ProcessInfo.processInfo.environment[variable] == nil { setenv(variable, "1", 1) }
        let job = Job.start(threads)
        job.run {
            guard job.communicator.size > 1 else {
                throw ValidationError("bench allreduce needs at least 2 ranks: run it under mpirun -np N")
            }
            job.log("bench allreduce: \(job.communicator.size) ranks (\(job.communicator.localSize) on rank 0's host), \(job.communicator.transportDescription)")
            let report = try AllreduceBenchmark.run(communicator: job.communicator, sizesMB: sizeList, iterations: iterations,
                                                    includeLibraryAlgorithms: !noLibraryAlgorithms, log: job.log)
            if let best = report.variants.filter({ !$0.name.contains("bf16") }).max(by: { ($0.bestBusGBps.max() ?? 0) < ($1.bestBusGBps.max() ?? 0) }) {
                let peak = best.bestBusGBps.max() ?? 0
                job.log(String(format: "fastest fp32: %@, %.2f GB/s (%.0f%% of the link)", best.name, peak,
                               report.linkGBps > 0 ? 100 * peak / report.linkGBps : 0))
            }
            if let json, job.isRoot { try AtomicFile.writeJSON(report, to: json) }
        }
    }
}
