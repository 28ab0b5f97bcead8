import ArgumentParser
import Foundation
import Pipeline

struct PipelineRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "The whole method: baseline features, three rounds of cluster/train/extract, CAMs and scores.",
        discussion: """
            Stages, in order: train R0 (only without --baseline: psa's settings), extract R0; then for each round \
            r: cluster Rr (k-means per class on the previous round's features), train Rr (the 61-epoch schedule; \
            by default it stops after the checkpoint the method uses, --used-epochs 30,40,50), extract Rr (not \
            after the last round); then infer (multi-scale + flip CAMs on --infer-list) and eval (mIoU at \
            --threshold and the best threshold of a sweep) for the last round, or for every round with \
            --evaluate-all-rounds; then affinity-labels, train-aff, refine and its eval (the pseudo-labels), \
            train-seg, segment and its eval on --val-list. Every stage is recorded in WORK/run.json and the run \
            ends with WORK/report.html. Rerunning the same command skips finished stages and resumes an \
            interrupted one: training from its checkpoint (SIGTERM or SIGUSR1 writes one and exits with code 4), \
            extraction from each rank's saved part, per-image stages from the images already written. A rerun \
            with other settings is refused. Every default is the reference's (docs/stages.md lists them).
            """)

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var exchange: ExchangeOptions
    @OptionGroup var method: MethodOptions
    @OptionGroup var source: DatasetOptions
    @Option(help: "Work folder: run.json, features/, labels/, weights/, logs/, infer/, ... (docs/stages.md).") var work: String
    @Option(help: "Initial backbone weights, ImageNet ResNet-38 in the reference (MXNet .params, PyTorch .pth or safetensors). Without it, He initialisation.")
    var `init`: String?
    @Option(help: "A trained round-0 classifier (psa's res38_cls.pth, as SC-CAM uses). Without it the pipeline trains one from --init.")
    var baseline: String?
    @Option(help: "Network width divisor when no weight file decides it (1 = the real ResNet-38).") var widthDivisor: Int?
    @Option(help: "Training images (train_aug, or a list file).") var trainList: String?
    @Option(help: "Images to infer CAMs for and score (train, as the reference reports).") var inferList: String?
    @Option(help: "Ground-truth masks for scoring (default VOC_ROOT/SegmentationClass).") var groundTruth: String?

    func run() throws {
        var settings = source.dataset == .coco ? SCCAMPipeline.Settings.coco(root: source.root) : SCCAMPipeline.Settings(vocRoot: source.root)
        (settings.initialWeights, settings.baselineWeights, settings.groundTruth) = (`init`, baseline, groundTruth)
        (settings.widthDivisor, settings.trainList) = (widthDivisor ?? settings.widthDivisor, trainList ?? settings.trainList)
        settings.inferList = inferList ?? settings.inferList
        method.apply(to: &settings, compute: compute, exchange: exchange)
        let job = Job.start(compute)
        job.run { try job.runPipeline(settings, in: try job.context(work: work), runtime: method.runtime(exchange: exchange)) }
    }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole method on a synthetic dataset, no download needed.",
        discussion: """
            Writes a small VOC-layout dataset into WORK/voc (JPEG images, palette masks, XML annotations, lists): \
            four classes (aeroplane, car, cat, person), each in two visually distinct sub-types (shape, texture, \
            colour), on varied backgrounds, sometimes two objects per image. Then runs `sccam pipeline` on it with \
            the demo's recipe (`SCCAMPipeline.Settings.demo`, each departure from the reference with its reason; \
            docs/pipeline-and-demo.md): a 1/16-width ResNet-38 and 96-pixel images, every network from scratch, \
            three rounds with k = 2, CAMs of every round scored against the masks, the pixel-level stages on the \
            baseline's CAMs, and DeepLab-v2 on the pseudo-labels, scored on the validation images with and \
            without the CRF. About 2.5 to 8 minutes on 2 cores, depending on the CPU. Rerunning the command skips \
            what is done; the method flags below override the recipe.
            """)

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var exchange: ExchangeOptions
    @OptionGroup var method: MethodOptions
    @Option(help: "Work folder; the dataset goes into WORK/voc (WORK/coco with --dataset coco).") var work = "sccam-demo"
    @Option(help: "The synthetic dataset's layout: voc, or coco (COCO's layout and annotation format, prepared with prepare-coco).")
    var dataset = DemoDataset.Settings().kind
    @Option(help: "Images to synthesise (about 80% train, 20% val).") var images = DemoDataset.Settings().images
    @Option(help: "Side of the square images, in pixels (large enough for AffinityNet's radius-5 pairs on the stride-8 grid).")
    var imageSize = DemoDataset.Settings().imageSize
    @Option(help: "Network width divisor (16: about 0.4M parameters).") var widthDivisor = DemoDataset.Settings().widthDivisor
    @Option(help: "Seed of the synthetic dataset.") var dataSeed = DemoDataset.Settings().seed

    func run() throws {
        let data = DemoDataset.Settings(kind: dataset, images: images, imageSize: imageSize, widthDivisor: widthDivisor, seed: dataSeed)
        var settings = DemoDataset.pipelineSettings(data, work: work)
        method.apply(to: &settings, compute: compute, exchange: exchange)
        if method.usedEpochs == nil { settings.usedEpochs = Array(repeating: settings.epochs - 1, count: settings.rounds) }
        let job = Job.start(compute)
        job.run {
            let context = try job.context(work: work)
            try DemoDataset.prepare(data, work: work, context: context)
            try job.runPipeline(settings, in: context, runtime: method.runtime(exchange: exchange, logEvery: 50))
        }
    }
}

extension Job {
    /// Runs the pipeline in a readied work folder, prints its scores and writes its report.
    func runPipeline(_ settings: SCCAMPipeline.Settings, in context: StageContext, runtime: SCCAMPipeline.Runtime) throws {
        let work = context.layout.root
        let summary: SCCAMPipeline.Summary
        do {
            summary = try SCCAMPipeline.run(settings: settings, work: work, runtime: runtime, compute: compute, communicator: communicator,
                                            log: log, warn: warn)
        } catch let stopped as Training.Stopped {
            log("\(stopped.checkpoint) written; run the same command again to continue")
            throw ExitCode(4)
        }
        for line in summary.lines(work: work, validationList: settings.segmentation?.validationList ?? "val") { log(line) }
        // The results are on disk already: a report that cannot be written is a warning, not a failed run.
        guard isRoot else { return }
        do { log("report: \(try RunReport.write(work: work)) (open it in a browser)") } catch {
            warn("could not write the report: \(error); `sccam report \(work)` tries again")
        }
    }
}
