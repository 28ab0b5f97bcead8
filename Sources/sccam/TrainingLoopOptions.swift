import ArgumentParser
import Network
import Pipeline

/// The flags of the shared training loop (`Training.run`), for `train` and `train-aff`.
struct TrainingLoopOptions: ParsableArguments {
    @Option(help: "SGD momentum (default: the reference's; SC-CAM and psa's effective 0.0005, DeepLab's 0.9).")
    var momentum: Float?

    @Option(help: "Weight decay.")
    var weightDecay: Float = PolySGD.referenceWeightDecay

    @Option(help: "Seed of the data order, augmentation, dropout and the initialisation of new layers.")
    var seed: UInt64 = 0

    @Flag(help: "Continue from the latest checkpoint in WORK/weights.")
    var resume = false

    @Option(help: "Stop after this many epochs of this run (with a checkpoint); --resume continues.")
    var stopAfterEpochs: Int?

    @Option(help: "Background threads decoding and augmenting images.")
    var decodeThreads: Int = 1

    @Flag(help: "Skip unreadable images with a warning instead of stopping.")
    var skipUnreadable = false

    @Option(help: "Print and log every this many steps.")
    var logEvery: Int = 10

    // The commands validate these with their own flags, in one message.

    func apply(to options: inout Training.Options, defaultMomentum: Float = PolySGD.referenceMomentum) {
        options.momentum = momentum ?? defaultMomentum
        options.weightDecay = weightDecay
        options.seed = seed
        options.resume = resume
        options.stopAfterEpochs = stopAfterEpochs
        options.decodeThreads = decodeThreads
        options.skipUnreadable = skipUnreadable
        options.logEvery = logEvery
    }
}
