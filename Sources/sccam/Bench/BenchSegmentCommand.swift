import ArgumentParser
import Benchmarks
import Foundation
import Pipeline

struct BenchSegment: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Time DeepLab-v2 training steps at 321 and MSC test forwards at 513 against this machine's sgemm.",
        discussion: """
            A training step: the MSC forward at scales 1, 0.5 and 0.75, the loss of the four \
            outputs, backward into every convolution and the optimiser at learning rate 0, on \
            synthetic 0-255-scale crops and labels. A test forward: the MSC network on one \
            synthetic --test-size image. Each is run --steps times; the first includes planning \
            memory. Prints the best time after the first, the GFLOP (deeplab-v2.md section 6: \
            825.8 per full-width 321 sample, 689.8 per 513 forward) and the rate as a ratio to sgemm \
            measured in the same run.
            """)

    @OptionGroup var compute: ComputeOptions

    @Option(help: "Divide every channel count by this (1 = the real ResNet-101).") var widthDivisor: Int = 1
    @Option(help: "Images per training step.") var batch: Int = 1
    @Option(help: "Training crop (the reference's).") var crop = SegmentationTrainingStage.Settings(labels: "").crop
    @Option(help: "Test image side (the reference's largest VOC images: 500; DeepLab's 513).") var testSize: Int = 513
    @Option(help: "Steps of each kind to time.") var steps: Int = 3

    func validate() throws {
        guard [1, 2, 4, 8, 16, 32].contains(widthDivisor) else { throw ValidationError("--width-divisor must be a power of two up to 32") }
        guard batch >= 1, steps >= 1, crop >= 16, testSize >= 16 else { throw ValidationError("--batch and --steps at least 1; --crop and --test-size at least 16") }
    }

    func run() throws {
        let job = Job.start(compute)
        job.run {
            try SegmentationBenchmark.run(widthDivisor: widthDivisor, batch: batch, crop: crop, testSize: testSize, steps: steps,
                                          compute: job.compute, log: job.log)
                .lines(batch: batch, crop: crop, testSize: testSize, widthDivisor: widthDivisor).forEach(job.log)
        }
    }
}
