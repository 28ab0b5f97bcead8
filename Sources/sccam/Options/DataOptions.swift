import ArgumentParser
import Pipeline

/// Which dataset a command reads, and where it is.
struct DatasetOptions: ParsableArguments {
    @Option(help: "voc (PASCAL VOC 2012, 20 classes) or coco (MS COCO 2014 prepared by `sccam prepare-coco`, 80 classes).")
    var dataset = DatasetKind.voc

    @Option(name: .customLong("voc-root"), help: ArgumentHelp(
        "The VOC 2012 folder (VOCdevkit/VOC2012).",
        discussion: "It holds JPEGImages/, Annotations/, ImageSets/Segmentation/, SegmentationClass/ and, for train_aug, SegmentationClassAug/."))
    var vocRoot: String?

    @Option(help: ArgumentHelp(
        "The COCO 2014 folder, prepared by `sccam prepare-coco`.",
        discussion: "It holds train2014/, val2014/, annotations/, and what prepare-coco writes: SegmentationClass/, ImageSets/, ImageLabels/. VOC's list names train_aug, train and val stand for train2014 and val2014."))
    var cocoRoot: String?

    func validate() throws {
        switch dataset {
        case .voc: guard vocRoot != nil else { throw ValidationError("give --voc-root (or --dataset coco with --coco-root)") }
        case .coco: guard cocoRoot != nil else { throw ValidationError("--dataset coco needs --coco-root") }
        }
    }

    var root: String { (dataset == .coco ? cocoRoot : vocRoot) ?? "" }
}

/// The dataset flags of every command that reads images.
struct DataOptions: ParsableArguments {
    @OptionGroup var source: DatasetOptions

    @Option(help: "The images: train, val, train_aug, or the path of a list file (default: the command's, in its --help).") var list: String?
    @Flag(help: "Skip unreadable images (counted and reported) instead of stopping.") var skipUnreadable = false
}

/// The dataset and work-folder flags of every stage command that writes into a work folder.
struct StageOptions: ParsableArguments {
    @OptionGroup var data: DataOptions

    @Option(help: "Work folder: what the stage reads and writes there is in the command's discussion and docs/stages.md.") var work: String
}

/// A training command's flags besides the stage's own: where it starts and the optimiser's schedule.
struct TrainingOptions: ParsableArguments {
    @OptionGroup var exchange: ExchangeOptions

    @Option(help: "Initial weights (any format, recognised by content); without them, He initialisation at --width-divisor.") var `init`: String?
    @Option(help: "Channel divisor when training from scratch (the weights decide it otherwise); 1 = the real network.") var widthDivisor: Int?
    @Option(help: "Global batch, split evenly over the ranks (train-seg: images per sub-batch).") var batch: Int?
    @Option(help: "Base learning rate.") var lr: Float?
    @Option(help: "Crop size.") var crop: Int?
    @Option(help: "SGD momentum.") var momentum: Float?
    @Option(help: "Weight decay.") var weightDecay: Float?
    @Option(help: "Seed of the data order, augmentation, dropout and the initialisation of new layers.") var seed: UInt64?
    @Option(help: "Checkpoint every this many epochs (and after the last).") var checkpointEvery: Int?
    @Flag(help: "Continue from the latest checkpoint in WORK/weights.") var resume = false
    @Option(help: "Stop after this many epochs of this run (with a checkpoint); --resume continues.") var stopAfterEpochs: Int?
    @Option(help: "Background threads decoding and augmenting images.") var decodeThreads = StageRuntime().decodeThreads
    @Option(help: "Print and log every this many steps.") var logEvery = StageRuntime().logEvery

    /// Sets what was given; the rest keeps the stage's defaults (the reference's, in the command's --help).
    func apply<Settings: TrainingStageSettings>(to settings: inout Settings, list: String?) {
        (settings.list, settings.initialWeights, settings.widthDivisor) = (list ?? settings.list, self.`init`, widthDivisor ?? settings.widthDivisor)
        (settings.batch, settings.learningRate, settings.crop) = (batch ?? settings.batch, lr ?? settings.learningRate, crop ?? settings.crop)
        (settings.momentum, settings.weightDecay, settings.seed) = (momentum ?? settings.momentum, weightDecay ?? settings.weightDecay,
                                                                   seed ?? settings.seed)
        (settings.checkpointEvery, settings.resume, settings.stopAfterEpochs) = (checkpointEvery ?? settings.checkpointEvery, resume,
                                                                                 stopAfterEpochs)
    }

    func runtime(skipUnreadable: Bool) -> StageRuntime {
        var runtime = StageRuntime()
        (runtime.decodeThreads, runtime.logEvery, runtime.skipUnreadable) = (decodeThreads, logEvery, skipUnreadable)
        runtime.exchange = exchange.settings
        return runtime
    }
}
extension DatasetKind: ExpressibleByArgument {}
