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
            per image. Then runs `sccam pipeline` on it with a 1/16-width ResNet-38 and 96-pixel \
            images (the classifiers train on 48-pixel crops): the baseline classifier from scratch (40 epochs, lr 0.1, momentum 0.9), three \
            rounds of sub-category discovery with k = 2 (20 epochs each, lr 0.05), CAMs of every \
            round scored against the masks, then the pixel-level stages: affinity labels from \
            the baseline's CAMs (psa's choice; CRF exponents 2 and 4), AffinityNet (from the baseline's \
            backbone, 30 epochs on whole 96-pixel images, lr 0.01), the random walk over every pair of the feature grid (alpha 2, beta 16) \
            and the pseudo-labels' mIoU; then DeepLab-v2 (ResNet-101 at the same width, from scratch, 300 \
            iterations of 2 x 5 whole images at lr 0.001) trained on the pseudo-labels and scored on \
            the validation images, with and without the CRF (on the image itself). About 2.5 to 8 minutes on 2 cores, depending on the CPU. Each round starts from the baseline's \
            backbone (the demo's stand-in for the ImageNet weights the reference starts every round \
            from). Rerunning the command skips what is done; the method flags below override the demo's \
            settings.
            """)

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var convolution: ConvolutionOptions
    @OptionGroup var exchange: ExchangeOptions
    @OptionGroup var method: MethodOptions

    @Option(help: "Work folder; the dataset goes into WORK/voc.")
    var work: String = "sccam-demo"

    @Option(help: "Images to synthesise (about 80% train, 20% val).")
    var images: Int = 200

    @Option(help: "Side of the square images, in pixels (large enough for AffinityNet's radius-5 pairs on the stride-8 grid).")
    var imageSize: Int = 96

    @Option(help: "Network width divisor (16: about 0.4M parameters).")
    var widthDivisor: Int = 16

    @Option(help: "Seed of the synthetic dataset.")
    var dataSeed: UInt64 = 1

    func validate() throws {
        guard images >= 8 else { throw ValidationError("--images must be at least 8") }
        guard imageSize >= 16 else { throw ValidationError("--image-size must be at least 16") }
        try method.validate()
    }

    /// The demo's recipe (the library's, with its reasons), then what the command line overrides.
    func settings() throws -> SCCAMPipeline.Settings {
        var settings = SCCAMPipeline.Settings.demo(vocRoot: "\(work)/voc", imageSize: imageSize, widthDivisor: widthDivisor)
        try method.apply(to: &settings)
        settings.convolutionPrecision = convolution.recordedPrecision
        settings.gradientExchange = exchange.recordedWireFormat
        if method.usedEpochs == nil { settings.usedEpochs = Array(repeating: settings.epochs - 1, count: settings.rounds) }
        return settings
    }

    func run() throws {
        let job = Job.start(runtime)
        convolution.apply()
        job.run {
            try job.prepareWork(work)
            let settings = try settings()
            if job.isRoot { try synthesize(root: settings.vocRoot, log: job.log) }
            try job.communicator.barrier()
            var runtime = method.runtime(defaultLogEvery: 50)
            runtime.exchange = exchange.settings
            try PipelineReport.run(settings: settings, work: work, runtime: runtime, job: job)
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
