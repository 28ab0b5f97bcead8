import Data
import Distributed
import Formats
import Foundation
import Network

/// The pipeline's last stages (deeplab-v2.md): DeepLab-v2 trained on the
/// random walk's pseudo-labels, then run on the validation list and scored
/// there, the number SC-CAM reports as 66.1.
extension SCCAMPipeline {
    public struct SegmentationSettings: Codable, Equatable, Sendable {
        /// The initialisation (deeplab-pytorch: deeplabv1_resnet101-coco.pth or init.caffemodel); nil = from scratch.
        public var initialWeights: String?
        public var widthDivisor = 1
        public var iterations = 20_000
        public var batch = 5
        public var iterSize = 2
        /// The reference's 2.5e-4; SC-CAM lowered it "a bit" for noisy labels (the value is unpublished).
        public var learningRate: Float = 2.5e-4
        public var momentum: Float = 0.9
        public var weightDecay: Float = PolySGD.referenceWeightDecay
        public var crop = 321
        public var validationList = "val"
        /// Also run and score the CRF post-processing (the image it sees, see `SegmentStage.CRFImage`).
        public var crf: String?

        public init() {}
    }

    static func segmentationStages(settings: Settings, segmentation: SegmentationSettings, work: String, runtime: Runtime,
                                   dataset: VOCDataset, communicator: Communicator, groundTruth: String,
                                   log: @escaping (String) -> Void, warn: @escaping (String) -> Void) -> [Stage] {
        let weights = "weights/SEG_final.safetensors"
        let configuration = DeepLabConfiguration(widthDivisor: segmentation.widthDivisor)
        var stages: [Stage] = []
        stages.append(Stage(name: "train-seg", inputs: ["\(work)/refine", segmentation.initialWeights ?? "He initialisation", settings.inferList],
                            outputs: [weights]) {
            let list = try dataset.list(settings.inferList)
            let (network, loaded) = try SegmentationTrainingStage.makeNetwork(configuration: configuration,
                                                                              initialWeights: segmentation.initialWeights, seed: settings.seed)
            if loaded == nil {
                warn("no segmentation --seg-init: DeepLab trains from scratch (He initialisation), not from the COCO weights the reference starts from")
            }
            var options = Training.Options(round: 0, epochs: 1, globalBatch: segmentation.batch * segmentation.iterSize,
                                           learningRate: segmentation.learningRate, cropSize: segmentation.crop, work: work)
            options.maxSteps = segmentation.iterations
            configure(&options, momentum: segmentation.momentum, weightDecay: segmentation.weightDecay, settings: settings, runtime: runtime)
            options.checkpointEvery = 5
            log("training DeepLab-v2 on the pseudo-labels: \(list.ids.count) images, \(segmentation.iterations) iterations of \(segmentation.iterSize) x \(segmentation.batch), lr \(segmentation.learningRate), crop \(segmentation.crop), width 1/\(segmentation.widthDivisor), over \(communicator.size) rank(s)")
            Training.installSignalHandlers()
            defer { Training.removeSignalHandlers() }
            let summary = try SegmentationTrainingStage.run(network: network, fromScratch: loaded == nil, dataset: dataset, ids: list.ids,
                                                            labels: "\(work)/refine",
                                                            augmentation: SegmentationAugmentation(cropSize: segmentation.crop),
                                                            subBatchSize: segmentation.batch, microBatch: nil, options: options,
                                                            skipUnreadable: false, communicator: communicator, log: log)
            if communicator.isRoot { try network.saveSafetensors("\(work)/\(weights)") }
            try communicator.barrier()
            return summary.steps > 0 ? ["first_loss": summary.firstLoss, "last_loss": summary.lastLoss, "steps": Double(summary.steps)] : nil
        })
        let crf = segmentation.crf.flatMap(SegmentStage.CRFImage.init(rawValue:))
        stages.append(Stage(name: "segment", inputs: ["\(work)/\(weights)", segmentation.validationList], outputs: ["segment"]) {
            let list = try dataset.list(segmentation.validationList)
            try dataset.validate(list)
            let network = DeepLabV2(configuration: configuration)
            try network.loadWeights("\(work)/\(weights)")
            var options = SegmentStage.Options(work: work, crf: crf)
            options.overlays = settings.overlays
            let summary = try SegmentStage.run(dataset: dataset, list: list, network: network, options: options, communicator: communicator, log: log)
            return ["images": Double(summary.computed + summary.alreadyDone)]
        })
        stages.append(Stage(name: "eval segment", inputs: ["\(work)/segment", groundTruth], outputs: ["segment/scores.json"]) {
            var result: [String: Double] = [:]
            for (folder, key) in [("segment", "miou")] + (crf != nil ? [("segment_crf", "crf_miou")] : []) {
                let (matrix, images) = try Evaluation.run(predictions: "\(work)/\(folder)", groundTruth: groundTruth, list: nil, communicator: communicator)
                guard images > 0, let miou = matrix.meanIoU else {
                    throw DataError("no label in \(work)/\(folder) has a ground-truth file in \(groundTruth); give --ground-truth")
                }
                log(String(format: "%d image(s) of %@: segmentation-network mIoU %.4f%@", images, segmentation.validationList, miou,
                           folder == "segment" ? "" : " with the CRF"))
                if communicator.isRoot {
                    struct Scores: Encodable { let miou: Double, images: Int, list: String, class_iou: [Double?] }
                    try AtomicFile.writeJSON(Scores(miou: miou, images: images, list: segmentation.validationList, class_iou: matrix.classIoU),
                                             to: "\(work)/\(folder)/scores.json")
                }
                result[key] = miou
                result["images"] = Double(images)
            }
            return result
        })
        return stages
    }
}
