import Distributed
import Foundation
import Stages
import Workflow

/// One stage of the pipeline's plan: a library stage with its settings, its
/// inputs and outputs as run.json records them, and what the pipeline logs
/// of its result.
struct PlannedStage {
    let name: String
    let inputs: [String]
    /// Relative to the work folder.
    let outputs: [String]
    /// Runs the stage; returns its result as run.json records it (the ranks agree on rank 0's).
    let run: () throws -> JSONValue

    init<S: Stage>(_ name: String, _ stage: S.Type, _ settings: S.Settings, inputs: [String], outputs: [String], context: StageContext,
                   report: @escaping (S.Result) -> Void = { _ in }) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs.map(context.layout.relative)
        run = {
            let result = try context.communicator.broadcast(try S.run(settings, in: context), root: 0)
            report(result)
            return try JSONValue(encoding: result)
        }
    }

    init(_ name: String, inputs: [String], outputs: [String], context: StageContext, run: @escaping () throws -> JSONValue) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs.map(context.layout.relative)
        self.run = run
    }
}

extension SCCAMPipeline {
    /// The stages in order, each a library stage with the settings this run gives it.
    static func plan(_ settings: Settings, runtime: Runtime, context: StageContext) throws -> [PlannedStage] {
        let layout = context.layout
        let baseline = settings.baselineWeights ?? layout.classifierWeights(round: 0, epoch: settings.baselineEpochs - 1)
        func classifier(round: Int) -> String {
            round == 0 ? baseline : layout.classifierWeights(round: round, epoch: settings.usedEpochs[round - 1])
        }
        var stages: [PlannedStage] = []
        if settings.baselineWeights == nil {
            stages.append(PlannedStage("train R0", ClassifierTrainingStage.self, training(settings, round: 0, from: settings.initialWeights),
                                       inputs: [settings.initialWeights ?? "He initialisation", settings.trainList], outputs: [baseline],
                                       context: context))
        }
        stages.append(extraction(settings, round: 0, weights: baseline, context: context))
        for round in 1...settings.rounds {
            var clustering = ClusterStage.Settings(round: round)
            (clustering.k, clustering.restarts, clustering.seed) = (settings.k, settings.kmeansRestarts, settings.kmeansSeed)
            stages.append(PlannedStage("cluster R\(round)", ClusterStage.self, clustering, inputs: layout.features(round: round - 1).all,
                                       outputs: layout.subcategories(round: round).all, context: context))
            let initial: String? = switch settings.roundStart {
            case .initial: settings.initialWeights
            case .previous: classifier(round: round - 1)
            case .baseline: baseline
            }
            stages.append(PlannedStage("train R\(round)", ClassifierTrainingStage.self, training(settings, round: round, from: initial),
                                       inputs: [layout.subcategories(round: round).table, initial ?? "He initialisation"],
                                       outputs: [classifier(round: round)], context: context))
            if round < settings.rounds { stages.append(extraction(settings, round: round, weights: classifier(round: round), context: context)) }
        }
        let groundTruth = try settings.groundTruth ?? context.dataset!.groundTruthFolder(forList: settings.inferList)
        for round in evaluatedRounds(settings) {
            var inference = InferStage.Settings(weights: classifier(round: round))
            (inference.list, inference.threshold, inference.scales) = (settings.inferList, settings.threshold, settings.scales)
            (inference.overlays, inference.crfAlpha, inference.output) = (settings.overlays, settings.crfAlpha, .round(round))
            let folder = layout.inference(round: round)
            stages.append(PlannedStage("infer R\(round)", InferStage.self, inference, inputs: [classifier(round: round), settings.inferList],
                                       outputs: [folder.root], context: context))
            var evaluation = EvaluateStage.Settings(groundTruth: groundTruth)
            (evaluation.predictions, evaluation.cams, evaluation.threshold) = (folder.masks.path, folder.cams.path, settings.threshold)
            (evaluation.crfAlpha, evaluation.requireImages, evaluation.scores) = (settings.crfAlpha, true, folder.scores)
            evaluation.crfPredictions = settings.crfAlpha.map { _ in folder.crfMasks.path }
            stages.append(PlannedStage("eval R\(round)", EvaluateStage.self, evaluation, inputs: [folder.root, groundTruth],
                                       outputs: [folder.scores], context: context) { result in
                context.log(String(format: "%d image(s): mIoU %.4f at threshold %.2f; best threshold %.2f: mIoU %.4f", result.images,
                                   result.miou ?? .nan, settings.threshold, result.bestThreshold ?? .nan, result.bestMiou ?? .nan))
                if let alpha = settings.crfAlpha, let crf = result.crfMiou {
                    context.log(String(format: "dCRF masks (alpha %g): mIoU %.4f", alpha, crf))
                }
            })
        }
        if let refine = settings.refine {
            stages += refinementStages(settings, refine: refine, runtime: runtime, groundTruth: groundTruth, baseline: baseline,
                                       classifier: classifier, context: context)
        }
        if let segmentation = settings.segmentation, settings.refine != nil {
            let validation = try settings.groundTruth ?? context.dataset!.groundTruthFolder(forList: segmentation.validationList)
            stages += segmentationStages(settings, segmentation: segmentation, groundTruth: validation, context: context)
        }
        return stages
    }

    /// A classifier round's training as this run sets it: it always resumes.
    static func training(_ settings: Settings, round: Int, from initialWeights: String?) -> ClassifierTrainingStage.Settings {
        var training = ClassifierTrainingStage.Settings(round: round)
        (training.k, training.list, training.initialWeights, training.widthDivisor) = (settings.k, settings.trainList, initialWeights,
                                                                                         settings.widthDivisor)
        (training.batch, training.longSide, training.subcategoryWeight) = (settings.batch, settings.longSide, settings.subcategoryWeight)
        (training.momentum, training.weightDecay, training.seed) = (settings.momentum, settings.weightDecay, settings.seed)
        (training.checkpointEvery, training.resume) = (settings.checkpointEvery, true)
        if round == 0 {
            (training.epochs, training.learningRate, training.crop) = (settings.baselineEpochs, settings.baselineLearningRate, settings.baselineCrop)
        } else {
            (training.epochs, training.learningRate, training.crop) = (settings.epochs, settings.learningRate, settings.crop)
            if !settings.finishSchedule { training.lastEpochToTrain = settings.usedEpochs[round - 1] }
        }
        return training
    }

    static func extraction(_ settings: Settings, round: Int, weights: String, context: StageContext) -> PlannedStage {
        var extraction = ExtractStage.Settings(weights: weights, round: round)
        (extraction.list, extraction.resume) = (settings.trainList, true)
        return PlannedStage("extract R\(round)", ExtractStage.self, extraction, inputs: [weights],
                            outputs: context.layout.features(round: round).all, context: context)
    }
}
