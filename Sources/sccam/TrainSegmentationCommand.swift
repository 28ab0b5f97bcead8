import ArgumentParser
import Data
import Foundation
import Kernels
import Network
import Pipeline

struct TrainSegmentation: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-seg",
        abstract: "Train DeepLab-v2 (ResNet-101, ASPP, MSC) on per-pixel labels, data-parallel over the ranks (deeplab-pytorch's main.py train).",
        discussion: """
            The segmentation network of the method's last step, as kazuto1011/deeplab-pytorch trains \
            it (deeplab-v2.md 4): each iteration is --iter-size sub-batches of --batch images (2 x 5 = \
            10), each image scaled by one of 0.5, 0.75, 1, 1.25, 1.5, padded with the mean colour \
            and label 255 to the crop, cropped to 321, flipped, BGR on the 0-255 scale less the mean; \
            the loss is the sum of the cross-entropies of the MSC outputs (scale 1, 0.5, 0.75 and \
            their max, labels shrunk with Pillow's nearest rule), each normalised by its sub-batch's \
            labelled pixels, divided by the iteration size. SGD momentum 0.9, weight decay 5e-4, \
            lr 2.5e-4 (ASPP weights 10x, biases 20x without decay), poly 0.9 recomputed every 10 \
            iterations, BatchNorm frozen, 20,000 iterations. Ranks split the iteration's images \
            (the labelled-pixel counts of a split sub-batch are summed over the ranks first, so the \
            result does not depend on the rank count). --labels: a folder of class-id PNGs, the \
            random walk's WORK/refine for the method, SegmentationClassAug for a fully supervised \
            run. --init: the COCO initialisation (deeplabv1_resnet101-coco.pth, or the DeepLab \
            authors' init.caffemodel read natively), a DeepLab checkpoint, or a torchvision \
            ResNet-101 .pth (stride on the 3x3 there: the weights load into this network's \
            stride-on-1x1 blocks, a documented approximation). Checkpoints: WORK/weights/SEG_ep{e}; \
            SIGTERM or SIGUSR1 writes SEG_partial and exits with code 4; --resume continues exactly. \
            Deviation: an epoch is the shuffled list in whole iterations; the remainder of the list \
            (10,582 mod 10 = 2 images) waits for the next epoch's order, where the reference ends \
            each epoch with a 2-image sub-batch.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var convolution: ConvolutionOptions
    @OptionGroup var exchange: ExchangeOptions
    @OptionGroup var loop: TrainingLoopOptions

    @OptionGroup var voc: VOCRootOption

    @Option(help: "train, val, train_aug, or the path of a list file.")
    var list: String = "train_aug"

    @Option(help: "Folder of class-id label PNGs, {id}.png (0..20, 255 ignored): sccam refine's WORK/refine, or SegmentationClassAug.")
    var labels: String

    @Option(help: "Initial weights: COCO init .pth or .caffemodel, a DeepLab checkpoint, or a torchvision ResNet-101 .pth; none = from scratch (He, for tests and demos).")
    var `init`: String?

    @Option(help: "Channel divisor of ResNet-101 (1 = the real network; 16 for tests and the demo).")
    var widthDivisor: Int = 1

    @Option(help: "Work folder: weights/ and logs/ are written to it.")
    var work: String

    @Option(help: "Iterations (optimiser steps).")
    var iterations: Int = 20_000

    @Option(help: "Images per sub-batch (the loss is normalised per sub-batch).")
    var batch: Int = 5

    @Option(help: "Sub-batches accumulated per iteration.")
    var iterSize: Int = 2

    @Option(help: "Run a rank's images in parts of this many (same result, less memory).")
    var microBatch: Int?

    @Option(help: "Base learning rate (the reference: 2.5e-4; SC-CAM used \"a bit\" less for noisy pseudo-labels).")
    var lr: Float = 2.5e-4

    @Option(help: "Crop size.")
    var crop: Int = 321

    @Option(help: "Comma-separated augmentation scales.")
    var scales: String = "0.5,0.75,1,1.25,1.5"

    @Option(help: "How the MSC inputs are resized: ratio (PyTorch <= 1.5, the reference's results) or inverse (PyTorch >= 1.6).")
    var inputResize: String = "ratio"

    @Option(help: "Checkpoint every this many epochs (and after the last iteration); 5 epochs of train_aug are about the reference's 5,000 iterations.")
    var checkpointEvery: Int = 5

    func validate() throws {
        guard iterations >= 1, batch >= 1, iterSize >= 1, checkpointEvery >= 1, loop.decodeThreads >= 1, loop.logEvery >= 1, (microBatch ?? 1) >= 1 else {
            throw ValidationError("--iterations, --batch, --iter-size, --micro-batch, --checkpoint-every, --decode-threads and --log-every must be at least 1")
        }
        guard crop >= 16 else { throw ValidationError("--crop must be at least 16") }
        guard [1, 2, 4, 8, 16, 32].contains(widthDivisor) else { throw ValidationError("--width-divisor must be a power of two up to 32") }
        guard BilinearRule(rawValue: inputResize) != nil else { throw ValidationError("--input-resize must be ratio or inverse") }
        _ = try parsedScales()
    }

    typealias BilinearRule = Kernels.BilinearResize.Rule

    func parsedScales() throws -> [Double] {
        let values = scales.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count == scales.split(separator: ",").count, values.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--scales must be positive numbers separated by commas, e.g. 0.5,0.75,1,1.25,1.5")
        }
        return values
    }

    func run() throws {
        let job = Job.start(runtime)
        convolution.apply()
        job.run {
            try job.prepareWork(work)
            let dataset = try VOCDataset(root: voc.root)
            let imageList = try dataset.list(list)
            try dataset.validate(imageList)
            let configuration = DeepLabConfiguration(widthDivisor: widthDivisor, inputResize: BilinearRule(rawValue: inputResize)!)
            let (network, loaded) = try SegmentationTrainingStage.makeNetwork(configuration: configuration, initialWeights: `init`,
                                                                              seed: loop.seed)
            if let loaded {
                job.log("initial weights: \(loaded)")
            } else {
                job.warn("no --init: DeepLab trains from scratch (He initialisation), not from the COCO weights the reference starts from")
            }
            let global = batch * iterSize
            var options = Training.Options(round: 0, epochs: 1, globalBatch: global, learningRate: lr, cropSize: crop, work: work)
            options.checkpointEvery = checkpointEvery
            options.exchange = exchange.settings
            options.maxSteps = iterations
            loop.apply(to: &options, defaultMomentum: 0.9)
            let augmentation = SegmentationAugmentation(cropSize: crop, scales: try parsedScales())
            job.log("train-seg: \(imageList.ids.count) images of \(imageList.source), labels \(labels), \(iterations) iterations of \(iterSize) x \(batch) images over \(job.communicator.size) rank(s), lr \(lr), momentum \(options.momentum), crop \(crop), width 1/\(widthDivisor)")
            let summary = try job.trainStoppable {
                try SegmentationTrainingStage.run(network: network, fromScratch: loaded == nil, dataset: dataset, ids: imageList.ids,
                                                  labels: labels, augmentation: augmentation, subBatchSize: batch, microBatch: microBatch,
                                                  options: options, skipUnreadable: loop.skipUnreadable, communicator: job.communicator,
                                                  log: job.log)
            }
            job.log(String(format: "trained %d iteration(s) in %.1f s: loss %.4f -> %.4f; waited %.2f s for gradient allreduces; weights in %@",
                           summary.steps, summary.seconds, summary.firstLoss, summary.lastLoss, summary.communicationWaitSeconds,
                           summary.checkpoints.last.map { "\($0).safetensors" } ?? "\(work)/weights"))
        }
    }
}
