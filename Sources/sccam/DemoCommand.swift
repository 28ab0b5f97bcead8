import ArgumentParser
import Data
import Formats
import Foundation
import Pipeline

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole method on a synthetic dataset, no download needed.",
        discussion: """
            Writes a small VOC-layout dataset into WORK/voc (JPEG images, palette masks, XML \
            annotations, lists): four classes (aeroplane, car, cat, person), each in two visually \
            distinct sub-types (shape, texture, colour), on varied backgrounds, sometimes two objects \
            per image. Then runs `sccam pipeline` on it with a 1/16-width ResNet-38 and 48-pixel \
            images: the baseline classifier from scratch (40 epochs, lr 0.1, momentum 0.9), three \
            rounds of sub-category discovery with k = 2 (20 epochs each, lr 0.05), and CAMs of every \
            round scored against the masks. About 2 minutes on 2 cores. Each round starts from the baseline's \
            backbone (the demo's stand-in for the ImageNet weights the reference starts every round \
            from). Rerunning the command skips what is done; the method flags below override the demo's \
            settings.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var method: MethodOptions

    @Option(help: "Work folder; the dataset goes into WORK/voc.")
    var work: String = "sccam-demo"

    @Option(help: "Images to synthesise (about 80% train, 20% val).")
    var images: Int = 200

    @Option(help: "Side of the square images, in pixels.")
    var imageSize: Int = 48

    @Option(help: "Network width divisor (16: about 0.4M parameters).")
    var widthDivisor: Int = 16

    @Option(help: "Seed of the synthetic dataset.")
    var dataSeed: UInt64 = 1

    func validate() throws {
        guard images >= 8 else { throw ValidationError("--images must be at least 8") }
        guard imageSize >= 16 else { throw ValidationError("--image-size must be at least 16") }
        try method.validate()
    }

    /// The demo's defaults: the reference's method, scaled to a few minutes on two cores.
    func settings() throws -> SCCAMPipeline.Settings {
        var settings = SCCAMPipeline.Settings(vocRoot: "\(work)/voc")
        settings.widthDivisor = widthDivisor
        settings.k = 2
        settings.batch = 8
        // From scratch, without ImageNet features to fine-tune, the network needs
        // momentum and more epochs than the reference's fine-tuning schedule.
        settings.momentum = 0.9
        settings.baselineEpochs = 40
        settings.baselineLearningRate = 0.1
        settings.baselineCrop = imageSize
        settings.epochs = 20
        settings.learningRate = 0.05
        settings.crop = imageSize
        // The reference resizes VOC's ~500-pixel images to a long side of 256...512,
        // half to all of their size; the demo's small images get the same treatment.
        settings.longSide = [imageSize / 2, imageSize]
        settings.roundStart = .baseline
        settings.evaluateAllRounds = true
        settings.checkpointEvery = 1000
        try method.apply(to: &settings)
        if method.usedEpochs == nil { settings.usedEpochs = Array(repeating: settings.epochs - 1, count: settings.rounds) }
        return settings
    }

    func run() throws {
        let job = Job.start(runtime)
        job.run {
            try job.prepareWork(work)
            let settings = try settings()
            if job.isRoot { try synthesize(root: settings.vocRoot, log: job.log) }
            try job.communicator.barrier()
            try PipelineReport.run(settings: settings, work: work, runtime: method.runtime(defaultLogEvery: 50), job: job)
        }
    }

    /// Writes the dataset once; a rerun with other data flags is refused rather than mixing two datasets.
    func synthesize(root: String, log: (String) -> Void) throws {
        let stamp = "\(root)/demo-data.txt"
        let description = "images \(images) size \(imageSize) seed \(dataSeed)\n"
        if let existing = try? String(contentsOfFile: stamp, encoding: .utf8) {
            guard existing == description else {
                throw DataError("\(root) holds a demo dataset made with other flags (\(existing.trimmingCharacters(in: .whitespacesAndNewlines))); use another --work")
            }
            log("demo dataset: \(root) (\(description.trimmingCharacters(in: .whitespacesAndNewlines)))")
            return
        }
        let start = Date()
        let dataset = try SyntheticVOC.make(at: root, count: images, width: imageSize, height: imageSize, seed: dataSeed)
        try AtomicFile.write(description, to: stamp)
        let train = dataset.images.filter { !$0.inVal }
        let perClass = SyntheticVOC.catalogue.keys.sorted().map { c in "\(VOCClasses.names[c]) \(train.filter { $0.classes.contains(c) }.count)" }
        log(String(format: "demo dataset: %d images (%d train) of %dx%d in %@ in %.1f s; train images per class: %@", images, train.count,
                   imageSize, imageSize, root, Date().timeIntervalSince(start), perClass.joined(separator: ", ")))
    }
}
