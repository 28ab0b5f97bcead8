import ArgumentParser
import Benchmarks
import Foundation
import Pipeline

struct BenchTrainAff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-aff",
        abstract: "Time full AffinityNet training steps at 448 against this machine's sgemm.",
        discussion: """
            Forward, psa's affinity loss, backward (down to b3's input, as training does) and the \
            optimiser at learning rate 0, on synthetic crops and pair labels, --steps times; the \
            first step includes planning the workspace. Prints seconds per step, the step's GFLOP \
            and its rate as a ratio to sgemm measured in the same run.
            """)

    @OptionGroup var compute: ComputeOptions

    @Option(help: "Divide every channel count by this (1 = the real AffinityNet).") var widthDivisor: Int = 1
    @Option(help: "Images per step on this rank (psa's global batch is 8).") var batch: Int = 1
    @Option(help: "Crop size (psa's).") var crop = AffinityTrainingStage.Settings().crop
    @Option(help: "Training steps to time.") var steps: Int = 3

    func validate() throws {
        guard [1, 2, 4, 8, 16, 32, 64].contains(widthDivisor) else { throw ValidationError("--width-divisor must be a power of two up to 64") }
        guard batch >= 1, steps >= 1, crop >= 8, crop % 8 == 0 else { throw ValidationError("--batch and --steps at least 1; --crop a positive multiple of 8") }
    }

    func run() throws {
        let job = Job.start(compute)
        job.run {
            AffinityTrainingBenchmark.run(widthDivisor: widthDivisor, batch: batch, crop: crop, steps: steps, compute: job.compute, log: job.log)
                .lines(batch: batch, crop: crop, widthDivisor: widthDivisor).forEach(job.log)
        }
    }
}
