import ArgumentParser
import Data
import Foundation
import Network
import Pipeline

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the classifier of a round, data-parallel over the ranks.",
        discussion: """
            Round 0 trains the baseline classifier (head fc8) on the image labels, as psa does: crop \
            448, lr 0.1, 15 epochs. Rounds >= 1 train the SC-CAM classifier (fc8_20 + fc8_200) on the \
            sub-category labels of `sccam cluster` (WORK/labels/R{round}_subcategories.tsv): crop 224, \
            lr 0.01, 61 epochs, checkpoints every 10 epochs. Global batch 16, poly learning rate \
            (power 0.9), weight decay 5e-4, the head at 10x lr, and by default the reference's \
            effective SGD momentum of 0.0005 (its optimiser passes the weight decay into SGD's \
            momentum slot); --momentum 0.9 gives what its authors probably meant. Every round starts \
            from --init (ImageNet weights in the reference), with Xavier heads. SIGTERM or SIGUSR1 \
            (Slurm's pre-emption signal) finishes the current step, writes WORK/weights/R{round}_partial \
            and exits with code 4; --resume continues from there exactly.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var convolution: ConvolutionOptions
    @OptionGroup var exchange: ExchangeOptions
    @OptionGroup var loop: TrainingLoopOptions

    @OptionGroup var voc: VOCRootOption

    @Option(help: "Work folder: labels are read from it, weights/ and logs/ written to it.")
    var work: String

    @Option(help: "0 = the baseline classifier, >= 1 = an SC-CAM round.")
    var round: Int = 1

    @Option(help: "Initial weights (MXNet .params, PyTorch .pth or safetensors); without it, He initialisation.")
    var `init`: String?

    @Option(help: "Channel divisor when training from scratch (no --init; with --init the file decides): 1 = the real ResNet-38.")
    var widthDivisor: Int = 1

    @Option(help: "Round 0: the image list (default train_aug).")
    var list: String = "train_aug"

    @Option(help: "Sub-categories per class (rounds >= 1).")
    var k: Int = 10

    @Option(help: "Epochs (default 15 for round 0, 61 for rounds >= 1).")
    var epochs: Int?

    @Option(help: "Global batch size, split evenly over the ranks.")
    var batch: Int = 16

    @Option(help: "Base learning rate (default 0.1 for round 0, 0.01 for rounds >= 1).")
    var lr: Float?

    @Option(help: "Crop size (default 448 for round 0, 224 for rounds >= 1).")
    var crop: Int?

    @Option(help: "Random resize of the long side before the crop, min,max in pixels.")
    var longSide: String = "256,512"


    @Option(help: "Weight of the sub-category loss.")
    var subcategoryWeight: Float = 5

    @Option(help: "Checkpoint every this many epochs (and after the last).")
    var checkpointEvery: Int = 10


    func validate() throws {
        guard round >= 0, k >= 1, batch >= 1, checkpointEvery >= 1, loop.decodeThreads >= 1, loop.logEvery >= 1 else {
            throw ValidationError("--round must be 0 or more; --k, --batch, --checkpoint-every, --decode-threads and --log-every at least 1")
        }
        guard longSideRange != nil else { throw ValidationError("--long-side must be min,max in pixels, like 256,512") }
        guard NetworkConfiguration.widthDivisors.contains(widthDivisor) else { throw ValidationError("--width-divisor must be a power of two up to 64") }
    }

    var longSideRange: ClosedRange<Int>? { ListArguments.sizeRange(longSide) }

    func run() throws {
        let job = Job.start(runtime)
        convolution.apply()
        job.run {
            try job.prepareWork(work)
            let dataset = try VOCDataset(root: voc.root)
            let (ids, targets) = try Training.targets(round: round, k: k, dataset: dataset, list: list, work: work, isRoot: job.isRoot,
                                                      warn: job.warn)
            let network = try Training.makeNetwork(initPath: `init`, round: round, k: k, widthDivisor: widthDivisor, seed: loop.seed,
                                                   warn: job.warn)
            var options = Training.Options(round: round, epochs: epochs ?? (round == 0 ? 15 : 61), globalBatch: batch,
                                           learningRate: lr ?? (round == 0 ? 0.1 : 0.01), cropSize: crop ?? (round == 0 ? 448 : 224), work: work)
            options.longSide = longSideRange!
            options.subcategoryWeight = subcategoryWeight
            options.checkpointEvery = checkpointEvery
            options.exchange = exchange.settings
            loop.apply(to: &options)
            job.log("train round \(round): \(ids.count) images, global batch \(batch) over \(job.communicator.size) rank(s), \(options.epochs) epochs, lr \(options.learningRate), crop \(options.cropSize)")
            let summary = try job.trainStoppable {
                try Training.run(network: network, dataset: dataset, ids: ids, targets: targets, options: options,
                                 communicator: job.communicator, log: job.log)
            }
            job.log(String(format: "trained %d step(s) in %.1f s: loss %.4f -> %.4f; waited %.2f s for gradient allreduces",
                           summary.steps, summary.seconds, summary.firstLoss, summary.lastLoss, summary.communicationWaitSeconds))
        }
    }
}
