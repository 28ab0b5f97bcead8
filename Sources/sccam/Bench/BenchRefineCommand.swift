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
            let r = RefineBenchmark.run(widthDivisor: widthDivisor, repeats: repeats, compute: job.compute, log: job.log)
            job.log(String(format: "image %dx%d, grid of %d cells, %.1f entries per column of T", r.width, r.height, r.cells, r.meanColumnEntries))
            job.log(String(format: "AffinityNet forward: %.2f s; transition: %.4f s", r.networkSeconds, r.transitionSeconds))
            job.log(String(format: "walk, sparse (256 products, float64): %.4f s", r.sparseWalkSeconds))
            job.log(String(format: "walk, dense (8 squarings, float32 sgemm, %.0f GFLOP): %.2f s = %.1f GFLOP/s, %.2fx this machine's sgemm (%.1f GFLOP/s)",
                           r.denseGFLOP, r.denseWalkSeconds, r.denseGFLOP / r.denseWalkSeconds, r.denseGFLOP / r.denseWalkSeconds / r.sgemmGFLOPS, r.sgemmGFLOPS))
            job.log(String(format: "dense / sparse walk: %.0fx; per image (network + transition + walk): %.2f s fast, %.2f s dense",
                           r.denseWalkSeconds / r.sparseWalkSeconds, r.networkSeconds + r.transitionSeconds + r.sparseWalkSeconds,
                           r.networkSeconds + r.transitionSeconds + r.denseWalkSeconds))
            job.log(String(format: "the two walks differ by %.1e relative; labels agree on %.4f of the pixels", r.maxRelativeDifference, r.labelsAgree))
        }
    }
}
