import Foundation
import Network
import Stages
import Workflow

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
        public var lowAlpha = RefineSettings.labels.lowAlpha
        public var highAlpha = RefineSettings.labels.highAlpha
        public var epochs = RefineSettings.training.epochs
        public var batch = RefineSettings.training.batch
        public var learningRate = RefineSettings.training.learningRate
        public var crop = RefineSettings.training.crop
        public var momentum = RefineSettings.training.momentum
        public var weightDecay = RefineSettings.training.weightDecay
        public var walk = RandomWalk.Parameters()

        public init() {}

        static let labels = AffinityLabelStage.Settings(cams: "")
        static let training = AffinityTrainingStage.Settings()
    }

    static func refinementStages(_ settings: Settings, refine: RefineSettings, runtime: Runtime, groundTruth: String, baseline: String,
                                 classifier: (Int) -> String, context: StageContext) -> [PlannedStage] {
        let layout = context.layout
        let round = refine.camsRound ?? settings.rounds
        let affinityList = refine.trainList ?? settings.trainList
        var stages: [PlannedStage] = []
        // CAMs of AffinityNet's training images: "infer R{r}" makes them when AffinityNet trains on the inference list.
        let reusesInference = affinityList == settings.inferList
        let trainingCAMs = reusesInference ? layout.inference(round: round) : layout.affinityInference(round: round)
        if !reusesInference {
            var inference = InferStage.Settings(weights: classifier(round))
            (inference.list, inference.threshold, inference.scales) = (affinityList, settings.threshold, settings.scales)
            (inference.overlays, inference.output) = (false, .affinityTraining(round: round))
            stages.append(PlannedStage("infer R\(round) for AffinityNet", InferStage.self, inference, inputs: [classifier(round), affinityList],
                                       outputs: [trainingCAMs.root], context: context))
        }
        var labels = AffinityLabelStage.Settings(cams: trainingCAMs.cams.path)
        (labels.list, labels.lowAlpha, labels.highAlpha) = (affinityList, refine.lowAlpha, refine.highAlpha)
        stages.append(PlannedStage("affinity-labels", AffinityLabelStage.self, labels, inputs: [trainingCAMs.cams.path],
                                   outputs: [layout.affinityLabels.path], context: context))
        var training = AffinityTrainingStage.Settings()
        training.list = affinityList
        training.initialWeights = refine.start == .baseline ? baseline : settings.initialWeights
        (training.widthDivisor, training.epochs, training.batch) = (settings.widthDivisor, refine.epochs, refine.batch)
        (training.learningRate, training.crop, training.momentum) = (refine.learningRate, refine.crop, refine.momentum)
        (training.weightDecay, training.seed, training.checkpointEvery) = (refine.weightDecay, settings.seed, settings.checkpointEvery)
        (training.resume, training.microBatch) = (true, runtime.affinityMicroBatch)
        let affinityWeights = layout.affinityWeights(epoch: refine.epochs - 1)
        stages.append(PlannedStage("train-aff", AffinityTrainingStage.self, training,
                                   inputs: [layout.affinityLabels.path, training.initialWeights ?? "He initialisation"],
                                   outputs: [affinityWeights], context: context))
        let cams = layout.inference(round: round).cams.path
        var walk = RefineStage.Settings(affinityWeights: affinityWeights, cams: cams)
        (walk.list, walk.walk, walk.overlays) = (settings.inferList, refine.walk, settings.overlays)
        let pseudoLabels = layout.pseudoLabels
        stages.append(PlannedStage("refine", RefineStage.self, walk, inputs: [affinityWeights, cams, settings.inferList],
                                   outputs: [pseudoLabels.labels.path], context: context))
        var evaluation = EvaluateStage.Settings(groundTruth: groundTruth)
        (evaluation.predictions, evaluation.requireImages) = (pseudoLabels.labels.path, true)
        (evaluation.scores, evaluation.camsRound) = (pseudoLabels.scores, round)
        stages.append(PlannedStage("eval refine", EvaluateStage.self, evaluation, inputs: [pseudoLabels.labels.path, groundTruth],
                                   outputs: [pseudoLabels.scores], context: context) { result in
            context.log(String(format: "%d image(s): pseudo-label mIoU %.4f after the random walk of round %d's CAMs", result.images,
                               result.miou ?? .nan, round))
        })
        return stages
    }
}
