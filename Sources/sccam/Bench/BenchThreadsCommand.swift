import ArgumentParser
import Benchmarks
import Foundation
import Pipeline

struct BenchThreads: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threads",
        abstract: "Time the training step phase by phase at several thread counts, with the machine's own scaling beside it.",
        discussion: """
            Runs `sccam bench train`'s real loop (synthetic JPEGs, full-width ResNet-38, crop 224, the \
            optimiser at a learning rate of 0) at each of --thread-counts in turn, --rounds times \
            interleaved, with the phase profiler on (as SCCAM_PROFILE=1). For every phase (convolution \
            primitives, reorders, our Winograd's weight transform (U), its weight-gradient transform (dU to \
            dW) and its activation transforms, element-wise passes, \
            the finite-gradient check, the optimiser, waiting for data) it prints the best time per step \
            at each count, the speed-up from the first count to the last and its range over the rounds, \
            and the phase's share of the step. \
            Three references are measured at the same counts in the same rounds: the FMA peak (what \
            compute-bound work can gain from threads), STREAM's memory triad (what a pass that streams \
            from memory can gain) and a pass that only writes, with ordinary stores (what a pass bound by \
            its stores can gain, such as our Winograd's weight transform, which writes four floats of U \
            for every weight). A phase that scales with the memory rows but not with the peak is held back \
            by the memory, not by a serial stretch. Run it on one rank; rank 0 prints.
            """)

    @OptionGroup var compute: ComputeOptions

    @Option(help: ArgumentHelp("Comma-separated thread counts to compare, e.g. 1,2 or 1,4,16.",
                               discussion: "Default: 1 and this rank's threads (--threads or its default)."))
    var threadCounts: String?
    @Option(help: "Interleaved rounds over the counts; the best of them is reported.") var rounds: Int = 2
    @Option(help: "Global batch (split over the ranks).") var batch: Int = 2
    @Option(help: "Timed steps per count and round (after one untimed warm-up step).") var steps: Int = 3
    @Option(help: "Channel divisor (1 = real ResNet-38).") var widthDivisor: Int = 1
    @Option(help: "Folder for the synthetic images.") var folder: String = "/tmp/sccam-bench-train"

    /// The parsed counts; nil when not given.
    func countList() throws -> [Int]? {
        guard let threadCounts else { return nil }
        let counts = threadCounts.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard counts.count >= 2, counts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--thread-counts must list two or more positive integers, e.g. 1,2 (got '\(threadCounts)')")
        }
        return counts.map { $0! }
    }

    func validate() throws {
        _ = try countList()
        guard rounds >= 1, steps >= 1, batch >= 1 else { throw ValidationError("--rounds, --steps and --batch must be at least 1") }
        guard NetworkConfiguration.widthDivisors.contains(widthDivisor) else {
            throw ValidationError("--width-divisor must be a power of two up to 64")
        }
    }

    func run() throws {
        let job = Job.start(compute)
        job.run {
            let counts = try countList() ?? [1, job.threads.count]
            guard Set(counts).count >= 2 else {
                throw ValidationError("this rank runs 1 thread, so there is nothing to compare: give --thread-counts (e.g. 1,2) or --threads")
            }
            job.log("bench threads: counts \(counts), \(rounds) round(s), batch \(batch), \(job.compute.convolutionEngine)")
            let report = try ThreadScalingBenchmark.run(counts: counts, rounds: rounds, globalBatch: batch, steps: steps,
                                                        widthDivisor: widthDivisor,
                                                        cropSize: ClassifierTrainingStage.Settings(round: 1).crop,
                                                        compute: job.compute, folder: folder, communicator: job.communicator,
                                                        progress: job.log)
            report.lines().forEach(job.log)
        }
    }
}
