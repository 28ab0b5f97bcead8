import Foundation
import Stages
import Workflow

/// The pipeline's last stages (deeplab-v2.md): DeepLab-v2 trained on the
/// random walk's pseudo-labels, then run on the validation list and scored
/// there, the number SC-CAM reports as 66.1.
extension SCCAMPipeline {
    public struct SegmentationSettings: Codable, Equatable, Sendable {
        /// The initialisation (deeplab-pytorch: deeplabv1_resnet101-coco.pth or init.caffemodel); nil = from scratch.
        public var initialWeights: String?
        public var widthDivisor = SegmentationSettings.training.widthDivisor
        public var iterations = SegmentationSettings.training.iterations
        public var batch = SegmentationSettings.training.batch
        public var iterSize = SegmentationSettings.training.iterSize
        /// The reference's 2.5e-4; SC-CAM lowered it "a bit" for noisy labels (the value is unpublished).
        public var learningRate = SegmentationSettings.training.learningRate
        public var momentum = SegmentationSettings.training.momentum
        public var weightDecay = SegmentationSettings.training.weightDecay
        public var crop = SegmentationSettings.training.crop
        public var validationList = SegmentStage.Settings(weights: "").list
        /// Also run and score the CRF post-processing (the image it sees, see `SegmentStage.CRFImage`).
        public var crf: String?

        public init() {}

        static let training = SegmentationTrainingStage.Settings(labels: "")
    }

    static func segmentationStages(_ settings: Settings, segmentation: SegmentationSettings, groundTruth: String,
                                   context: StageContext) -> [PlannedStage] {
        let layout = context.layout, pseudoLabels = layout.pseudoLabels.labels.path, weights = layout.segmentationWeights
        var training = SegmentationTrainingStage.Settings(labels: pseudoLabels)
        (training.list, training.initialWeights, training.widthDivisor) = (settings.inferList, segmentation.initialWeights,
                                                                           segmentation.widthDivisor)
        (training.iterations, training.batch, training.iterSize) = (segmentation.iterations, segmentation.batch, segmentation.iterSize)
        (training.learningRate, training.momentum, training.weightDecay) = (segmentation.learningRate, segmentation.momentum,
                                                                            segmentation.weightDecay)
        (training.crop, training.seed, training.resume, training.writesFinalWeights) = (segmentation.crop, settings.seed, true, true)
        var stages = [PlannedStage("train-seg", SegmentationTrainingStage.self, training,
                                   inputs: [pseudoLabels, segmentation.initialWeights ?? "He initialisation", settings.inferList],
                                   outputs: [weights], context: context)]
        let crf = segmentation.crf.flatMap(SegmentStage.CRFImage.init(rawValue:))
        var segment = SegmentStage.Settings(weights: weights)
        (segment.widthDivisor, segment.list, segment.crf, segment.overlays) = (segmentation.widthDivisor, segmentation.validationList, crf,
                                                                              settings.overlays)
        let plain = layout.segmentation(crf: false), withCRF = layout.segmentation(crf: true)
        stages.append(PlannedStage("segment", SegmentStage.self, segment, inputs: [weights, segmentation.validationList],
                                   outputs: [plain.labels.path], context: context))
        // Each set of labels is scored into its own scores.json; run.json records one result, with the CRF's mIoU.
        stages.append(PlannedStage("eval segment", inputs: [plain.labels.path, groundTruth], outputs: [plain.scores], context: context) {
            var result = EvaluateStage.Result()
            for folders in [plain] + (crf != nil ? [withCRF] : []) {
                var evaluation = EvaluateStage.Settings(groundTruth: groundTruth)
                (evaluation.predictions, evaluation.requireImages) = (folders.labels.path, true)
                (evaluation.scores, evaluation.listName) = (folders.scores, segmentation.validationList)
                let scored = try context.communicator.broadcast(try EvaluateStage.run(evaluation, in: context), root: 0)
                context.log(String(format: "%d image(s) of %@: segmentation-network mIoU %.4f%@", scored.images, segmentation.validationList,
                                   scored.miou ?? .nan, folders == plain ? "" : " with the CRF"))
                if folders == plain { result = scored } else { result.crfMiou = scored.miou }
            }
            return try JSONValue(encoding: result)
        })
        return stages
    }
}
