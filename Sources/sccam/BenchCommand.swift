import ArgumentParser
import Foundation
import Network

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure this machine: network throughput against its own sgemm.",
        subcommands: [BenchNetwork.self, BenchData.self])
}

struct BenchNetwork: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Time ResNet-38's forward pass and training step.",
        discussion: """
            Builds the network (full width by default) with random weights and times, per batch \
            size, the forward pass and the training step (forward, SC-CAM loss, backward to every \
            trainable parameter, dropout on). Reports images/s, the convolution GFLOP/s achieved \
            (counting the multiply-accumulates actually executed), its ratio to a large sgemm \
            measured in the same run with the same threads (best pass against best sgemm probe, \
            and the median pass), and the peak resident memory. SCCAM_PROFILE=1 adds the time \
            spent in sgemm, im2col, col2im and element-wise passes. \
            Every rank runs its own copy; rank 0 prints.
            """)

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Channel divisor: 1 is the real ResNet-38, 16 the test-sized one.")
    var widthDivisor: Int = 1

    @Option(help: "Square input size in pixels.")
    var size: Int = 224

    @Option(help: "Comma-separated batch sizes.")
    var batches: String = "1,2"

    @Option(help: "Timed iterations per case (after one untimed warm-up); the best and the median are reported.")
    var iterations: Int = 3

    @Option(help: "Also write the report as JSON to this file.")
    var json: String?

    func validate() throws {
        guard [1, 2, 4, 8, 16, 32, 64].contains(widthDivisor) else {
            throw ValidationError("--width-divisor must be a power of two up to 64")
        }
        guard size >= 8 else { throw ValidationError("--size must be at least 8") }
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
        guard !batchList.isEmpty, batchList.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--batches must list positive integers, e.g. 1,2")
        }
    }

    var batchList: [Int] { batches.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func run() throws {
        let job = Job.start(runtime)
        job.run {
            job.log("bench network: width 1/\(widthDivisor), \(size)x\(size), batches \(batchList), \(job.threads.count) thread(s) per rank")
            let report = NetworkBenchmark.run(widthDivisor: widthDivisor, size: size, batches: batchList,
                                              iterations: iterations, progress: job.log)
            job.log(String(format: "forward %.1f GFLOP/image, train step %.1f GFLOP/image; peak resident memory %.2f GiB",
                           report.forwardGFLOPPerImage, report.trainGFLOPPerImage,
                           Double(report.peakResidentBytes) / Double(1 << 30)))
            if let json, job.isRoot {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try AtomicFileWriter.write(try encoder.encode(report), to: json)
            }
        }
    }
}
