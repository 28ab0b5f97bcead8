import Data
import Distributed
import Formats
import Foundation
import Network

/// The pipeline's stages after the CAMs (spec 9): affinity labels from a
/// round's CAMs, AffinityNet's training, the random walk, and the
/// pseudo-labels' mIoU (the number the paper reports as 63.4).
extension SCCAMPipeline {
    /// Where AffinityNet starts.
    public enum AffinityStart: String, Codable, CaseIterable, Sendable {
        /// The initial weights (ImageNet in the reference), as psa does.
        case initial
        /// The baseline (round-0) classifier's backbone (the demo: no ImageNet there).
        case baseline
    }

    public struct RefineSettings: Codable, Equatable, Sendable {
        /// Whose CAMs AffinityNet learns from and the walk propagates; nil = the last round's.
        /// psa used its baseline's (round 0); SC-CAM ran psa's AffinityNet on its round-3 CAMs.
        public var camsRound: Int?
        /// Images AffinityNet trains on; nil = the pipeline's training list (psa: train_aug).
        public var trainList: String?
        public var start = AffinityStart.initial
        public var lowAlpha: Float = 4
        public var highAlpha: Float = 32
        public var epochs = 8
        public var batch = 8
        public var learningRate: Float = 0.1
        public var crop = 448
        public var momentum: Float = PolySGD.referenceMomentum
        public var weightDecay: Float = PolySGD.referenceWeightDecay
        public var walk = RandomWalk.Parameters()

        public init() {}
    }

    static func refinementStages(settings: Settings, refine: RefineSettings, work: String, runtime: Runtime, dataset: VOCDataset,
                                 communicator: Communicator, groundTruth: String, baseline: String,
                                 inputs: @escaping (Int, String) throws -> (SCCAMNetwork, ImageList, ImageLabels),
                                 classifier: @escaping (Int) -> String,
                                 log: @escaping (String) -> Void, warn: @escaping (String) -> Void) -> [Stage] {
        let round = refine.camsRound ?? settings.rounds
        let affinityList = refine.trainList ?? settings.trainList
        var stages: [Stage] = []
        // CAMs of AffinityNet's training images: "infer R{r}" makes them when AffinityNet trains on the inference list.
        let reusesInference = affinityList == settings.inferList
        let trainingCAMs = reusesInference ? "infer/R\(round)" : "infer/R\(round)_affinity"
        if !reusesInference { stages.append(Stage(name: "infer R\(round) for AffinityNet", inputs: [classifier(round), affinityList], outputs: [trainingCAMs]) {
            let (network, list, labels) = try inputs(round, affinityList)
            let summary = try Inference.run(network: network, dataset: dataset, list: list, labels: labels,
                                            options: Inference.Options(work: "\(work)/\(trainingCAMs)", threshold: settings.threshold,
                                                                       scales: settings.scales, overlays: false),
                                            communicator: communicator, log: log)
            return ["images": Double(summary.computed + summary.alreadyDone)]
        }) }
        stages.append(Stage(name: "affinity-labels", inputs: ["\(work)/\(trainingCAMs)/cams"], outputs: ["affinity"]) {
            let list = try dataset.list(affinityList)
            let summary = try AffinityScoreStage.run(
                dataset: dataset, list: list,
                options: AffinityScoreStage.Options(cams: "\(work)/\(trainingCAMs)/cams", work: work, lowAlpha: refine.lowAlpha,
                                                    highAlpha: refine.highAlpha),
                communicator: communicator, log: log)
            return ["images": Double(summary.computed + summary.alreadyDone), "bytes": Double(summary.bytesWritten)]
        }
        )
        let affinityWeights = "weights/AFF_ep\(refine.epochs - 1).safetensors"
        let affinityInit: String? = refine.start == .baseline ? baseline : settings.initialWeights
        stages.append(Stage(name: "train-aff", inputs: ["\(work)/affinity", affinityInit ?? "He initialisation"], outputs: [affinityWeights]) {
            let list = try dataset.list(affinityList)
            let network = try AffinityTrainingStage.makeNetwork(initialWeights: affinityInit, widthDivisor: settings.widthDivisor,
                                                                seed: settings.seed, warn: warn)
            var options = Training.Options(round: 0, epochs: refine.epochs, globalBatch: refine.batch, learningRate: refine.learningRate,
                                           cropSize: refine.crop, work: work)
            configure(&options, momentum: refine.momentum, weightDecay: refine.weightDecay, settings: settings, runtime: runtime)
            log("training AffinityNet: \(list.ids.count) images, \(refine.epochs) epochs, lr \(refine.learningRate), crop \(refine.crop), global batch \(refine.batch) over \(communicator.size) rank(s), starting from \(affinityInit ?? "He initialisation")")
            Training.installSignalHandlers()
            defer { Training.removeSignalHandlers() }
            let summary = try AffinityTrainingStage.run(network: network, dataset: dataset, ids: list.ids, scores: "\(work)/affinity",
                                                        options: options, microBatch: runtime.affinityMicroBatch, skipUnreadable: false,
                                                        communicator: communicator, log: log)
            return summary.steps > 0 ? ["first_loss": summary.firstLoss, "last_loss": summary.lastLoss, "steps": Double(summary.steps)] : nil
        })
        let camsFolder = "infer/R\(round)/cams"
        stages.append(Stage(name: "refine", inputs: ["\(work)/\(affinityWeights)", "\(work)/\(camsFolder)", settings.inferList], outputs: ["refine"]) {
            let list = try dataset.list(settings.inferList)
            try dataset.validate(list)
            let network = try AffinityNetwork.fromWeights("\(work)/\(affinityWeights)")
            let summary = try RefineStage.run(dataset: dataset, list: list, network: network,
                                              options: RefineStage.Options(cams: "\(work)/\(camsFolder)", work: work, walk: refine.walk,
                                                                           overlays: settings.overlays),
                                              communicator: communicator, log: log)
            return ["images": Double(summary.computed + summary.alreadyDone)]
        })
        stages.append(Stage(name: "eval refine", inputs: ["\(work)/refine", groundTruth], outputs: ["refine/scores.json"]) {
            let (matrix, images) = try Evaluation.run(predictions: "\(work)/refine", groundTruth: groundTruth, list: nil, communicator: communicator)
            guard images > 0, let miou = matrix.meanIoU else {
                throw DataError("no label in \(work)/refine has a ground-truth file in \(groundTruth); give --ground-truth")
            }
            log(String(format: "%d image(s): pseudo-label mIoU %.4f after the random walk of round %d's CAMs", images, miou, round))
            if communicator.isRoot {
                struct Scores: Encodable { let miou: Double, images: Int, cams_round: Int, class_iou: [Double?] }
                try AtomicFile.writeJSON(Scores(miou: miou, images: images, cams_round: round, class_iou: matrix.classIoU),
                                         to: "\(work)/refine/scores.json")
            }
            return ["miou": miou, "images": Double(images), "cams_round": Double(round)]
        })
        return stages
    }
}
