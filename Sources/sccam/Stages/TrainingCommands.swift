import ArgumentParser
import Pipeline

/// The defaults a training command's flags fall back on, as its --help prints them.
func trainingDefaults<Settings: TrainingStageSettings>(_ settings: Settings, epochs: String, title: String = "Defaults (the reference's)") -> String {
    "\(title): list \(settings.list), \(epochs), global batch \(settings.batch), lr \(settings.learningRate), "
        + "crop \(settings.crop), momentum \(settings.momentum), weight decay \(settings.weightDecay), seed \(settings.seed), "
        + "a checkpoint every \(settings.checkpointEvery) epoch(s)."
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the classifier of a round, data-parallel over the ranks.",
        discussion: """
            Round 0 trains the baseline classifier (head fc8) on the image labels, as psa does. Rounds >= 1 \
            train the SC-CAM classifier (fc8_20 + fc8_200) on the sub-category labels of `sccam cluster` \
            (WORK/labels/R{round}_subcategories.tsv). Poly learning rate (power 0.9), the head at 10x lr, and by \
            default the reference's effective SGD momentum (its optimiser passes the weight decay into SGD's \
            momentum slot); --momentum 0.9 gives what its authors probably meant. Every round starts from --init \
            (ImageNet weights in the reference), with Xavier heads. SIGTERM or SIGUSR1 (Slurm's pre-emption \
            signal) finishes the current step, writes WORK/weights/R{round}_partial and exits with code 4; \
            --resume continues from there exactly. \
            \(trainingDefaults(ClassifierTrainingStage.Settings(round: 0), epochs: "\(ClassifierTrainingStage.Settings(round: 0).epochs) epochs", title: "Round 0's defaults (psa's)")) \
            \(trainingDefaults(ClassifierTrainingStage.Settings(round: 1), epochs: "\(ClassifierTrainingStage.Settings(round: 1).epochs) epochs", title: "Rounds >= 1 (SC-CAM's)"))
            """)

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var stage: StageOptions
    @OptionGroup var training: TrainingOptions
    @Option(help: "0 = the baseline classifier, >= 1 = an SC-CAM round.") var round = 1
    @Option(help: "Sub-categories per class (rounds >= 1).") var k = ClassifierTrainingStage.Settings(round: 1).k
    @Option(help: "Epochs of the schedule (default 15 for round 0, 61 for rounds >= 1).") var epochs: Int?
    @Option(help: "Random resize of the long side before the crop, min,max in pixels.") var longSide: ListArguments.SizeRange?
    @Option(help: "Weight of the sub-category loss.") var subcategoryWeight = ClassifierTrainingStage.Settings(round: 1).subcategoryWeight

    func run() throws {
        var settings = ClassifierTrainingStage.Settings(round: round)
        training.apply(to: &settings, list: stage.data.list)
        (settings.k, settings.epochs, settings.subcategoryWeight) = (k, epochs ?? settings.epochs, subcategoryWeight)
        settings.longSide = longSide?.sizes ?? settings.longSide
        Job.start(compute).run(ClassifierTrainingStage.self, settings, stage, runtime: training.runtime(skipUnreadable: false)) {
            $0.described()
        }
    }
}

struct TrainAffinity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-aff",
        abstract: "Train AffinityNet on the affinity labels, data-parallel over the ranks (psa's train_aff.py).",
        discussion: """
            Each sample: colour jitter (0.3, 0.3, 0.3, 0.1) on the image, a joint random crop of the image and \
            its two CRF score stacks (sccam affinity-labels' WORK/affinity/{id}.npy; padding black in the image, \
            0 in the scores), a joint flip, the scores mean-pooled 8 x 8 into the label map (spec 9.2) and the \
            radius-5 pair labels. psa's loss, whose three pair counts are summed over the whole global batch \
            before it is normalised, so the rank count does not change the result. The four new layers train at \
            10x lr, poly power 0.9. --init takes ImageNet or classifier weights in any format (its backbone; the \
            new layers start Kaiming / Xavier gain 4); the stem and BatchNorm stay frozen, b6/b7 dropout is on. \
            A full-width 448 crop needs about 4x the activation memory of a 224 crop: --micro-batch runs a \
            rank's share in parts whose gradients add up to the same step. Checkpoints: WORK/weights/AFF_ep{e} \
            (weights for sccam refine --aff-weights, plus optimiser state); SIGTERM or SIGUSR1 writes \
            AFF_partial and exits with code 4; --resume continues exactly. \
            \(trainingDefaults(AffinityTrainingStage.Settings(), epochs: "\(AffinityTrainingStage.Settings().epochs) epochs"))
            """)

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var stage: StageOptions
    @OptionGroup var training: TrainingOptions
    @Option(help: "Folder of the CRF score stacks from sccam affinity-labels (default WORK/affinity).") var labels: String?
    @Option(help: "Epochs.") var epochs = AffinityTrainingStage.Settings().epochs
    @Option(help: "Run each rank's share of a batch in parts of this many images (same result, less memory); default: all at once when it fits in the rank's part of the node's memory, else the largest part that does.")
    var microBatch: Int?

    func run() throws {
        var settings = AffinityTrainingStage.Settings()
        training.apply(to: &settings, list: stage.data.list)
        (settings.labels, settings.epochs, settings.microBatch) = (labels, epochs, microBatch)
        Job.start(compute).run(AffinityTrainingStage.self, settings, stage, runtime: training.runtime(skipUnreadable: false)) {
            $0.described() + "; weights in \(WorkLayout(stage.work).affinityWeights(epoch: epochs - 1))"
        }
    }
}

struct TrainSegmentation: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-seg",
        abstract: "Train DeepLab-v2 (ResNet-101, ASPP, MSC) on per-pixel labels, data-parallel over the ranks (deeplab-pytorch's main.py train).",
        discussion: """
            The segmentation network of the method's last step, as kazuto1011/deeplab-pytorch trains it \
            (deeplab-v2.md 4): each iteration is --iter-size sub-batches of --batch images, each image scaled by \
            one of --scales, padded with the mean colour and label 255 to the crop, cropped, flipped, BGR on the \
            0-255 scale less the mean; the loss is the sum of the cross-entropies of the MSC outputs (scale 1, \
            0.5, 0.75 and their max, labels shrunk with Pillow's nearest rule), each normalised by its \
            sub-batch's labelled pixels, divided by the iteration size. The ASPP's weights train at 10x, its \
            biases at 20x without decay; poly 0.9 recomputed every 10 iterations, BatchNorm frozen. Ranks split \
            the iteration's images (the labelled-pixel counts of a split sub-batch are summed over the ranks \
            first, so the result does not depend on the rank count). --labels: a folder of class-id PNGs, the \
            random walk's WORK/refine for the method, SegmentationClassAug for a fully supervised run. --init: \
            the COCO initialisation (deeplabv1_resnet101-coco.pth, or the DeepLab authors' init.caffemodel read \
            natively), a DeepLab checkpoint, or a torchvision ResNet-101 .pth (stride on the 3x3 there: the \
            weights load into this network's stride-on-1x1 blocks, a documented approximation). Checkpoints: \
            WORK/weights/SEG_ep{e}; SIGTERM or SIGUSR1 writes SEG_partial and exits with code 4; --resume \
            continues exactly. Deviation: an epoch is the shuffled list in whole iterations; the remainder of \
            the list (10,582 mod 10 = 2 images) waits for the next epoch's order, where the reference ends each \
            epoch with a 2-image sub-batch. \
            \(trainingDefaults(SegmentationTrainingStage.Settings(labels: ""), epochs: "\(SegmentationTrainingStage.Settings(labels: "").iterations) iterations of \(SegmentationTrainingStage.Settings(labels: "").iterSize) sub-batches"))
            """)

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var stage: StageOptions
    @OptionGroup var training: TrainingOptions
    @Option(help: "Folder of class-id label PNGs, {id}.png (0..20, 255 ignored): sccam refine's WORK/refine, or SegmentationClassAug.")
    var labels: String
    @Option(help: "Iterations (optimiser steps).") var iterations = SegmentationTrainingStage.Settings(labels: "").iterations
    @Option(help: "Sub-batches accumulated per iteration.") var iterSize = SegmentationTrainingStage.Settings(labels: "").iterSize
    @Option(help: "Run a rank's images in parts of this many (same result, less memory).") var microBatch: Int?
    @Option(help: "Comma-separated augmentation scales (default 0.5,0.75,1,1.25,1.5).") var scales: ListArguments.Scales?
    @Option(help: "How the MSC inputs are resized: ratio (PyTorch <= 1.5, the reference's results) or inverse (PyTorch >= 1.6).")
    var inputResize = SegmentationTrainingStage.Settings(labels: "").inputResize

    func run() throws {
        var settings = SegmentationTrainingStage.Settings(labels: labels)
        training.apply(to: &settings, list: stage.data.list)
        (settings.iterations, settings.iterSize, settings.microBatch) = (iterations, iterSize, microBatch)
        (settings.scales, settings.inputResize) = (scales?.values ?? settings.scales, inputResize)
        Job.start(compute).run(SegmentationTrainingStage.self, settings, stage, runtime: training.runtime(skipUnreadable: false)) {
            $0.described(unit: "iteration") + "; weights in \($0.checkpoints.last.map { "\($0).safetensors" } ?? WorkLayout(stage.work).weights)"
        }
    }
}
