import ArgumentParser
import Data
import Foundation
import Network
import Pipeline

struct TrainAffinity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-aff",
        abstract: "Train AffinityNet on the affinity labels, data-parallel over the ranks (psa's train_aff.py).",
        discussion: """
            Each sample: colour jitter (0.3, 0.3, 0.3, 0.1) on the image, a joint random 448 crop of \
            the image and its two CRF score stacks (sccam affinity-labels' WORK/affinity/{id}.npy; \
            padding black in the image, 0 in the scores), a joint flip, the scores mean-pooled 8 x 8 \
            into the label map (spec 9.2) and the radius-5 pair labels. psa's loss, whose three pair \
            counts are summed over the whole global batch before it is normalised, so the rank count \
            does not change the result. psa's settings by default: global batch 8, 8 epochs, lr 0.1 \
            with the four new layers at 10x, poly power 0.9, weight decay 5e-4, the reference's \
            effective momentum 0.0005 (--momentum 0.9 for plain SGD momentum). --init takes ImageNet \
            or classifier weights in any format (its backbone; the new layers start Kaiming / Xavier \
            gain 4); the stem and BatchNorm stay frozen, b6/b7 dropout is on. A full-width 448 crop \
            needs about 4x the activation memory of a 224 crop: --micro-batch runs a rank's share in \
            parts whose gradients add up to the same step. Checkpoints: WORK/weights/AFF_ep{e} \
            (weights for sccam refine --aff-weights, plus optimiser state); SIGTERM or SIGUSR1 \
            writes AFF_partial and exits with code 4; --resume continues exactly.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var convolution: ConvolutionOptions
    @OptionGroup var exchange: ExchangeOptions
    @OptionGroup var loop: TrainingLoopOptions

    @OptionGroup var voc: VOCRootOption

    @Option(help: "train, val, train_aug, or the path of a list file.")
    var list: String = "train_aug"

    @Option(help: "Folder of the CRF score stacks from sccam affinity-labels (default WORK/affinity).")
    var labels: String?

    @Option(help: "Initial weights: ImageNet (MXNet .params, converted safetensors) or a classifier checkpoint; its backbone is used.")
    var `init`: String?

    @Option(help: "Channel divisor when training from scratch (no --init): 1 = the real AffinityNet.")
    var widthDivisor: Int = 1

    @Option(help: "Work folder: weights/ and logs/ are written to it.")
    var work: String

    @Option(help: "Epochs.")
    var epochs: Int = 8

    @Option(help: "Global batch size, split evenly over the ranks.")
    var batch: Int = 8

    @Option(help: "Run each rank's share of a batch in parts of this many images (same result, less memory); default: all at once when it fits in the rank's part of the node's memory, else the largest part that does.")
    var microBatch: Int?

    @Option(help: "Base learning rate.")
    var lr: Float = 0.1

    @Option(help: "Crop size (a multiple of 8).")
    var crop: Int = 448


    @Option(help: "Checkpoint every this many epochs (and after the last).")
    var checkpointEvery: Int = 1


    func validate() throws {
        guard epochs >= 1, batch >= 1, checkpointEvery >= 1, loop.decodeThreads >= 1, loop.logEvery >= 1, (microBatch ?? 1) >= 1 else {
            throw ValidationError("--epochs, --batch, --micro-batch, --checkpoint-every, --decode-threads and --log-every must be at least 1")
        }
        guard crop >= 8, crop % 8 == 0 else { throw ValidationError("--crop must be a positive multiple of 8 (the scores are pooled 8 x 8)") }
        guard NetworkConfiguration.widthDivisors.contains(widthDivisor) else { throw ValidationError("--width-divisor must be a power of two up to 64") }
    }

    func run() throws {
        let job = Job.start(runtime)
        convolution.apply()
        job.run {
            try job.prepareWork(work)
            let dataset = try VOCDataset(root: voc.root)
            let imageList = try dataset.list(list)
            try dataset.validate(imageList)
            let network = try AffinityTrainingStage.makeNetwork(initialWeights: `init`, widthDivisor: widthDivisor, seed: loop.seed,
                                                                warn: job.warn)
            var options = Training.Options(round: 0, epochs: epochs, globalBatch: batch, learningRate: lr, cropSize: crop, work: work)
            options.checkpointEvery = checkpointEvery
            options.exchange = exchange.settings
            loop.apply(to: &options)
            job.log("train-aff: \(imageList.ids.count) images of \(imageList.source), global batch \(batch) over \(job.communicator.size) rank(s), \(epochs) epochs, lr \(lr), crop \(crop), width 1/\(network.widthDivisor)")
            let summary = try job.trainStoppable {
                try AffinityTrainingStage.run(network: network, dataset: dataset, ids: imageList.ids, scores: labels ?? "\(work)/affinity",
                                              options: options, microBatch: microBatch, skipUnreadable: loop.skipUnreadable,
                                              communicator: job.communicator, log: job.log)
            }
            job.log(String(format: "trained %d step(s) in %.1f s: loss %.4f -> %.4f; waited %.2f s for gradient allreduces; weights in %@/weights/AFF_ep%d.safetensors",
                           summary.steps, summary.seconds, summary.firstLoss, summary.lastLoss, summary.communicationWaitSeconds, work, epochs - 1))
        }
    }
}
