import ArgumentParser
import Benchmarks
import Foundation
import Pipeline

struct BenchRefine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refine",
        abstract: "Time the random walk of sccam refine on a 500x375 image, the fast way and psa's dense way.",
        discussion: """
            AffinityNet (He-initialised at the given width) on the padded 504 x 376 image, then the \
            walk of 21 score channels over the 47 x 63 grid: 256 sparse products (what sccam refine \
            does) and psa's 8 dense squarings of the n x n transition matrix in float32 BLAS. Prints \
            the seconds of each part (best of --repeats), their ratio, and how far the two walks' \
            results are apart.
            """)

    @OptionGroup var compute: ComputeOptions

    @Option(help: "Divide every channel count by this (1 = the real AffinityNet).") var widthDivisor: Int = 1
    @Option(help: "Repeats; the best is reported.") var repeats: Int = 2

    func validate() throws {
        guard [1, 2, 4, 8, 16, 32, 64].contains(widthDivisor) else { throw ValidationError("--width-divisor must be a power of two up to 64") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        let job = Job.start(compute)
        job.run {
            RefineBenchmark.run(widthDivisor: widthDivisor, repeats: repeats, compute: job.compute, log: job.log).lines.forEach(job.log)
        }
    }
}
