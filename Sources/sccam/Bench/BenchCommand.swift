import ArgumentParser
import Benchmarks
import Foundation
import Pipeline

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure this machine: network throughput against its own sgemm.",
        subcommands: [BenchNetwork.self, BenchAllreduce.self, BenchData.self, BenchKMeans.self, BenchInfer.self, BenchTrain.self, BenchThreads.self, BenchCRF.self, BenchRefine.self, BenchTrainAff.self, BenchSegment.self, BenchCOCO.self])
}

struct BenchNetwork: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Time ResNet-38's forward pass and training step.",
        discussion: """
            Builds the network (full width by default) with random weights and times, per batch \
            size, the forward pass and the training step (forward, SC-CAM loss, backward to every \
            trainable parameter, dropout on). Reports images/s, the convolution GFLOP/s achieved \
            (counting every multiply-accumulate of the convolutions, taps on the zero padding \
            included, which oneDNN's direct kernels skip), its ratio to a large sgemm measured in \
            the same run with the same threads (best pass against best sgemm probe, and the median \
            pass), its ratio to the peak of a register-only loop on the same threads (FMA for \
            float32; AVX512_BF16's dot product for native bf16; AMX tiles, where oneDNN uses them, \
            go faster than either), and the peak resident memory. Each convolution path of --paths \
            runs the same passes, interleaved iteration by iteration, and oneDNN's speed-up over \
            im2col is printed. SCCAM_PROFILE=1 adds the time spent in sgemm, im2col, col2im, oneDNN \
            convolutions and reorders, and element-wise passes, and the rate of the convolution \
            kernels alone against the peak: how much any change outside the kernels could still win. \
            Every rank runs its own copy; rank 0 prints.
            """)

    @OptionGroup var threads: ThreadOptions

    @Option(help: "Channel divisor: 1 is the real ResNet-38, 16 the test-sized one.") var widthDivisor: Int = 1
    @Option(help: "Square input size in pixels.") var size: Int = 224
    @Option(help: "Comma-separated batch sizes.") var batches: String = "1,2"
    @Option(help: "Timed iterations per case (after one untimed warm-up); the best and the median are reported.") var iterations: Int = 3
    @Option(help: ArgumentHelp(
        "Comma-separated convolution paths to time, interleaved: im2col, direct (oneDNN fp32, direct kernels), winograd (oneDNN fp32, Winograd where it has it, ours on AVX2), fp32 (= winograd), bf16 (oneDNN bf16, Winograd F(2x2,3x3) with bf16 products where it wins), bf16-direct (oneDNN's direct bf16 kernels on every layer); a oneDNN path with the suffix -dilated runs every dilated layer on oneDNN's dilated kernels, with -phases on its phase images (e.g. winograd-dilated, bf16-phases), instead of where each wins.",
        discussion: """
            Default: im2col, direct, winograd where this CPU has float32 Winograd kernels (oneDNN's on AVX-512, ours on AVX2), and bf16 where it has bf16 \
            kernels (AVX-512); ask for bf16 to time the emulation.
            """))
    var paths: String?

    @Option(help: "Also write the report as JSON to this file.") var json: String?

    /// The paths to time, in order.
    func pathList() throws -> [NetworkBenchmark.Variant] {
        guard let paths else {
            return [.init(.im2col), .init(.oneDNN(.fp32), .direct)]
                + (DNNLRuntime.hasFloat32Winograd ? [.init(.oneDNN(.fp32), .winograd)] : [])
                + (DNNLRuntime.hasNativeBFloat16 ? [.init(.oneDNN(.bf16), .winograd)] : [])
        }
        return try paths.split(separator: ",").map { name -> NetworkBenchmark.Variant in
            var path = name.trimmingCharacters(in: .whitespaces).lowercased()
            var dilated = DilatedConvolutions.auto
            for forced in [DilatedConvolutions.dilated, .phases] where path.hasSuffix("-\(forced.rawValue)") {
                dilated = forced
                path.removeLast(forced.rawValue.count + 1)
            }
            switch path {
            case "im2col" where dilated == .auto: return .init(.im2col)
            case "direct": return .init(.oneDNN(.fp32), .direct, dilated: dilated)
            case "winograd", "fp32", "onednn": return .init(.oneDNN(.fp32), .winograd, dilated: dilated)
            case "bf16": return .init(.oneDNN(.bf16), .winograd, dilated: dilated)
            case "bf16-direct": return .init(.oneDNN(.bf16), .direct, dilated: dilated)
            default:
                throw ValidationError("--paths: unknown path '\(name)'; use im2col, direct, winograd, fp32, bf16 or bf16-direct, the oneDNN ones optionally with -dilated or -phases")
            }
        }
    }

    func validate() throws {
        _ = try pathList()
        guard NetworkConfiguration.widthDivisors.contains(widthDivisor) else {
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
        let job = Job.start(threads)
        job.run {
            job.log("bench network: width 1/\(widthDivisor), \(size)x\(size), batches \(batchList), \(job.threads.count) thread(s) per rank")
            let report = NetworkBenchmark.run(widthDivisor: widthDivisor, size: size, batches: batchList,
                                              iterations: iterations, paths: try pathList(), progress: job.log)
            job.log(String(format: "forward %.1f GFLOP/image, train step %.1f GFLOP/image; peak resident memory %.2f GiB",
                           report.forwardGFLOPPerImage, report.trainGFLOPPerImage,
                           Double(report.peakResidentBytes) / Double(1 << 30)))
            if let json, job.isRoot {
                try AtomicFile.writeJSON(report, to: json)
            }
        }
    }
}

struct BenchKMeans: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kmeans",
        abstract: "Time the cluster stage on synthetic VOC-sized features.",
        discussion: """
            10,582 images x 4096-d features with train_aug's class frequencies and 10 sub-types \
            per class, clustered per class with k = 10 and --n-init restarts, on however many \
            ranks the command runs. The inputs are also left in --folder for other tools.
            """)

    @OptionGroup var threads: ThreadOptions

    @Option(help: "Folder for the synthetic inputs and the outputs.") var folder: String = "/tmp/sccam-bench-kmeans"
    @Option(help: "k-means restarts per class.") var nInit = ClusterStage.Settings().restarts
    @Option(help: "points or classes.") var strategy = ClusterStage.Settings().strategy

    func run() throws {
        let job = Job.start(threads)
        job.run {
            let report = try KMeansBenchmark.run(folder: folder, restarts: nInit, strategy: strategy, communicator: job.communicator)
            let total = report.inertia.compactMap { $0 }.reduce(0, +)
            job.log(String(format: "cluster stage: %.2f s on %d rank(s), %@ strategy, %d threads each; total inertia %.6g",
                           report.seconds, job.communicator.size, strategy.rawValue, job.threads.count, total))
        }
    }
}

struct BenchInfer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Time multi-scale + flip CAM inference on 500x375 images.",
        discussion: "8 views per image (scales 1, 0.5, 1.5, 2 and flips), random full-width weights, images split across ranks.")

    @OptionGroup var compute: ComputeOptions

    @Option(help: "Images to process in total.") var images: Int = 2
    @Option(help: "Channel divisor (1 = real ResNet-38).") var widthDivisor: Int = 1

    func run() throws {
        let job = Job.start(compute)
        job.run {
            let (seconds, rate) = try InferenceBenchmark.run(images: images, widthDivisor: widthDivisor, compute: job.compute, communicator: job.communicator, log: job.log)
            job.log(String(format: "%d image(s) in %.1f s on %d rank(s) x %d thread(s): %.4f images/s", images, seconds,
                           job.communicator.size, job.threads.count, rate))
        }
    }
}

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time full training steps through the real loop, on however many ranks it runs.",
        discussion: """
            Synthetic 500x375 JPEGs, random full-width weights, the SC-CAM round loss, crop 224. \
            The setup cannot diverge: the optimiser runs every step at a learning rate of 0 (so the \
            weights stay as initialised) and the residual branches start at x0.1 as in from-scratch \
            training. Reports seconds per step, images/s and the fraction of the step spent waiting for the \
            gradient allreduce. Run it alone and under mpirun to compare.
            """)

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var exchange: ExchangeOptions

    @Option(help: "Global batch (split over the ranks).") var batch: Int = 2
    @Option(help: "Timed steps.") var steps: Int = 2
    @Option(help: "Channel divisor (1 = real ResNet-38).") var widthDivisor: Int = 1
    @Option(help: "Folder for the synthetic images.") var folder: String = "/tmp/sccam-bench-train"

    func run() throws {
        let job = Job.start(compute)
        job.run {
            job.log("setup: \(TrainingBenchmark.setupDescription)")
            let result = try TrainingBenchmark.run(globalBatch: batch, steps: steps, widthDivisor: widthDivisor,
                                                   cropSize: ClassifierTrainingStage.Settings(round: 1).crop, compute: job.compute,
                                                   exchange: exchange.settings, folder: folder, communicator: job.communicator)
            result.lines(ranks: job.communicator.size, threads: job.threads.count, globalBatch: batch, exchange: exchange.settings)
                .forEach(job.log)
        }
    }
}
