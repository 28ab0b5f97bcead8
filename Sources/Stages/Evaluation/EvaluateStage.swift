import Data
import Formats
import Foundation
import Workflow

/// `eval`: masks scored against ground truth with the reference's metric, a
/// background-threshold sweep over saved CAMs, or both; the pipeline scores
/// every round's CAMs, the pseudo-labels and the segmentation network with it.
public enum EvaluateStage: Stage {
    public static let name = "eval"

    public struct Settings: Codable, Sendable, Equatable {
        /// Ground-truth masks (SegmentationClass or SegmentationClassAug).
        public var groundTruth: String
        /// Predicted masks ({id}.png) to score.
        public var predictions: String?
        /// CAMs ({id}.npy, {id}.classes.npy) to sweep the background threshold over.
        public var cams: String?
        public var thresholds = Evaluation.sweepThresholds
        /// Score only the ids of this list file (each must have both files).
        public var list: String?
        /// The threshold the predicted masks were made at, recorded beside their score.
        public var threshold: Float?
        /// Also score these masks (SC-CAM's dCRF masks, the segmentation's CRF), made with `crfAlpha`.
        public var crfPredictions: String?
        public var crfAlpha: Float?
        /// Fail when no prediction has a ground-truth file.
        public var requireImages = false
        /// Write the result here as JSON (the pipeline's scores.json).
        public var scores: String?
        /// Write the confusion matrix and the per-class IoU here as JSON.
        public var matrixReport: String?
        /// The background and the object classes; nil = the context's dataset's (VOC's 21 without one).
        public var classes: Int?
        /// Recorded with the result: whose CAMs the pseudo-labels walked, the list scored.
        public var camsRound: Int?
        public var listName: String?

        public init(groundTruth: String) { self.groundTruth = groundTruth }
    }

    public struct Result: Codable, Sendable {
        public var images = 0
        public var miou: Double?
        public var classIoU: [Double?]?
        public var pixelAccuracy: Double?
        public var threshold: Float?
        public var bestMiou: Double?
        public var bestThreshold: Float?
        /// [threshold, mIoU (-1 where undefined)] per swept threshold.
        public var sweep: [[Double]]?
        public var crfAlpha: Float?
        public var crfMiou: Double?
        public var camsRound: Int?
        public var list: String?
        /// The scored masks' matrix (not recorded: `table` and `matrixReport` show it).
        public var matrix: ConfusionMatrix?

        public init() {}

        enum CodingKeys: String, CodingKey {
            case miou, threshold, bestMiou = "best_miou", bestThreshold = "best_threshold", images, classIoU = "class_iou", sweep
            case crfAlpha = "crf_alpha", crfMiou = "crf_miou", camsRound = "cams_round", list, pixelAccuracy = "pixel_accuracy"
        }
    }

    public static func run(_ settings: Settings, in context: StageContext) throws -> Result {
        let classes = settings.classes ?? context.dataset?.labelCount ?? 21
        var result = Result()
        (result.threshold, result.crfAlpha, result.camsRound, result.list) = (settings.threshold, settings.crfAlpha, settings.camsRound,
                                                                              settings.listName)
        if let cams = settings.cams {
            let matrices = try Evaluation.sweep(cams: cams, groundTruth: settings.groundTruth, thresholds: settings.thresholds,
                                                list: settings.list, classes: classes, communicator: context.communicator)
            let best = Evaluation.best(thresholds: settings.thresholds, matrices: matrices)
            result.sweep = zip(settings.thresholds, matrices).map { [Double($0), $1.meanIoU ?? -1] }
            (result.bestThreshold, result.bestMiou) = (best.threshold, best.meanIoU)
        }
        if let predictions = settings.predictions {
            let (matrix, images) = try scored(predictions, classes: classes, settings: settings, context: context)
            (result.images, result.matrix, result.miou) = (images, matrix, matrix.meanIoU)
            (result.classIoU, result.pixelAccuracy) = (matrix.classIoU, matrix.pixelAccuracy)
            if context.isRoot, let path = settings.matrixReport { try AtomicFile.writeJSON(matrix.jsonReport, to: path) }
        }
        if let crfPredictions = settings.crfPredictions {
            result.crfMiou = try scored(crfPredictions, classes: classes, settings: settings, context: context).matrix.meanIoU
        }
        if context.isRoot, let path = settings.scores { try AtomicFile.writeJSON(result, to: path) }
        return result
    }

    static func scored(_ predictions: String, classes: Int, settings: Settings,
                       context: StageContext) throws -> (matrix: ConfusionMatrix, images: Int) {
        let (matrix, images) = try Evaluation.run(predictions: predictions, groundTruth: settings.groundTruth, list: settings.list,
                                                  classes: classes, communicator: context.communicator)
        if settings.requireImages && (images == 0 || matrix.meanIoU == nil) {
            throw DataError("no label in \(predictions) has a ground-truth file in \(settings.groundTruth); give --ground-truth")
        }
        return (matrix, images)
    }
}
