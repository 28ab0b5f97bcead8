import ArgumentParser
import Benchmarks
import Foundation
import Pipeline

struct BenchData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Time image decoding and augmentation, and check that training is fed.",
        discussion: """
            Writes 500x375 photo-like JPEGs (the typical VOC size) to a temporary folder, times \
            decode + training augmentation on one thread and through the prefetching loader, then \
            runs training steps fed by a single decode thread and reports how long each step \
            waited for its batch (0 means the loader kept up).
            """)

    @OptionGroup var threads: ThreadOptions

    @Option(help: "Decode threads for the loader measurement.") var decodeThreads: Int = 1
    @Option(help: "Distinct JPEGs to write.") var images: Int = 16
    @Option(help: "Samples to decode and augment per measurement.") var samples: Int = 64
    @Option(help: "Training crop size.") var cropSize = ClassifierTrainingStage.Settings(round: 1).crop
    @Option(help: "Training steps fed by one decode thread (0 skips them).") var trainSteps: Int = 3
    @Option(help: "Images per training step.") var trainBatch: Int = 2
    @Option(help: "Channel divisor of the network for the training steps (1 = real ResNet-38).") var widthDivisor: Int = 1

    func validate() throws {
        guard decodeThreads >= 1, images >= 1, samples >= 1, cropSize >= 8, trainSteps >= 0, trainBatch >= 1 else {
            throw ValidationError("counts must be positive (--train-steps may be 0)")
        }
        guard NetworkConfiguration.widthDivisors.contains(widthDivisor) else {
            throw ValidationError("--width-divisor must be a power of two up to 64")
        }
    }

    func run() throws {
        let job = Job.start(threads)
        job.run {
            let report = try DataFeedBenchmark.run(decodeThreads: decodeThreads, distinctImages: images, samples: samples,
                                                   cropSize: cropSize, trainSteps: trainSteps, trainBatch: trainBatch,
                                                   widthDivisor: widthDivisor, compute: job.compute, progress: job.log)
            if !report.waitSeconds.isEmpty {
                job.log(String(format: "steps after the first waited %.3f s in total for data (%.1f%% of their time)",
                               report.waitSeconds.reduce(0, +),
                               100 * report.waitSeconds.reduce(0, +) / report.stepSeconds.dropFirst().reduce(0, +)))
            }
        }
    }
}
