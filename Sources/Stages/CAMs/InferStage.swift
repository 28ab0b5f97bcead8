import Data
import DenseCRF
import Distributed
import Formats
import Foundation
import Network
import Workflow

/// `infer`: each rank takes a contiguous part of the list and writes,
/// per image and atomically, into a `CAMFolder`:
/// - `cams/{id}.npy`: float32 [C, H, W], the normalised maps of the C present
///   classes, and `cams/{id}.classes.npy`: int32 [C], their class indices (0-19);
/// - `masks/{id}.png`: VOC palette PNG from the 20-class maps;
/// - `masks_sub/{id}.png`: the same from the sub-category maps (rounds >= 1);
/// - `overlays/{id}.png`: the image and a heat map per present class, side by side;
/// - with `crfAlpha`, `masks_crf/{id}.png`: SC-CAM's optional dCRF masks, the
///   argmax of the dense CRF (psa's parameters, 10 iterations) of
///   `[(1 - max CAM)^alpha, CAMs]` on the image.
/// Images whose outputs all exist are skipped, so a killed run resumes.
public enum InferStage: Stage {
    public static let name = "infer"

    public struct Settings: Codable, Sendable, Equatable {
        /// The classifier (safetensors, PyTorch .pth; recognised by content), with its heads.
        public var weights: String
        public var list = "train"
        /// The background threshold (SC-CAM 0.15; psa used 0.2).
        public var threshold = CAMInference.defaultThreshold
        /// Each scale runs plain and flipped.
        public var scales = InferenceViews.referenceScales
        public var overlays = true
        /// Also write dCRF masks with this background power (SC-CAM's optional post-processing), or none.
        public var crfAlpha: Float?
        public var output = Output.workFolder

        public init(weights: String) { self.weights = weights }
    }

    /// Where the CAM folder goes.
    public enum Output: Codable, Sendable, Equatable {
        /// The work folder itself (`sccam infer`).
        case workFolder
        /// WORK/infer/R{round} (the pipeline).
        case round(Int)
        /// WORK/infer/R{round}_affinity: the CAMs of AffinityNet's training images.
        case affinityTraining(round: Int)

        public func folder(in layout: WorkLayout) -> CAMFolder {
            switch self {
            case .workFolder: return layout.camOutputs
            case .round(let round): return layout.inference(round: round)
            case .affinityTraining(let round): return layout.affinityInference(round: round)
            }
        }
    }

    public typealias Result = ImagePassResult

    public static func run(_ settings: Settings, in context: StageContext) throws -> ImagePassResult {
        try requireSetting(settings.crfAlpha.map { $0 > 0 } ?? true, "--crf takes a positive alpha (psa uses 4 and 32)")
        try requireSetting(!settings.scales.isEmpty && settings.scales.allSatisfy { $0 > 0 }, "--scales must list positive numbers")
        let network = try SCCAMNetwork.fromWeights(settings.weights, compute: context.compute, note: context.warn)
        let dataset = try context.requireDataset(for: name)
        let list = try dataset.list(settings.list)
        try dataset.validate(list)
        let labels = try dataset.imageLabels(ids: list.ids, cache: context.isRoot ? context.layout.imageLabelCache : nil,
                                             warn: context.warn)
        context.log("infer: \(list.ids.count) images, \(settings.scales.count * 2) views each, on \(context.communicator.size) rank(s)")
        let folder = settings.output.folder(in: context.layout)
        return ImagePassResult(try infer(network: network, dataset: dataset, list: list, labels: labels, settings: settings, folder: folder,
                                         context: context))
    }

    static func infer(network: SCCAMNetwork, dataset: any SegmentationDataset, list: ImageList, labels: ImageLabels, settings: Settings,
                      folder: CAMFolder, context: StageContext) throws -> ImageStage.Summary {
        let hasSub = network.configuration.hasSubcategoryHead
        let crfWorkspace = CRFWorkspace()
        return try ImageStage.run(dataset: dataset, list: list, skipUnreadable: context.runtime.skipUnreadable,
                                  communicator: context.communicator, log: context.log, isDone: { id in
            let outputs = [folder.cams.npy(id), folder.cams.classes(id), folder.masks.png(id)]
                + (hasSub ? [folder.subcategoryMasks.png(id)] : []) + (settings.overlays ? [folder.overlays.png(id)] : [])
                + (settings.crfAlpha != nil ? [folder.crfMasks.png(id)] : [])
            return outputs.allSatisfy { FileManager.default.fileExists(atPath: $0) }
        }, read: { _, _ in () }) { id, image, _ in
            let classes = labels.classes[id] ?? []
            let result = CAMInference.run(network: network, image: image, classes: classes, scales: settings.scales)
            let plane = image.width * image.height
            try NPY.write(result.parentMaps, shape: [classes.count, image.height, image.width], to: folder.cams.npy(id))
            try NPY.write(classes.map { Int32($0) }, shape: [classes.count], to: folder.cams.classes(id))
            if settings.overlays {
                try PNG.write(CAMInference.overlay(image: image, result: result), to: folder.overlays.png(id))
            }
            if let merged = CAMInference.mergedSubcategoryMaps(result) {
                let mask = CAMInference.mask(maps: merged, classes: classes, plane: plane, threshold: settings.threshold)
                try PNG.write(IndexedImage(width: image.width, height: image.height, indices: mask, palette: VOCPalette.colors),
                              to: folder.subcategoryMasks.png(id))
            }
            if let alpha = settings.crfAlpha {
                let cams = CRFScores.CAMs(classes: classes, maps: result.parentMaps, width: image.width, height: image.height)
                let scores = CRFScores.infer(CRFScores.makeCRF(image: image), stack: CRFScores.backgroundStack(cams, alpha: alpha),
                                             labels: 1 + classes.count, workspace: crfWorkspace)
                try PNG.write(IndexedImage(width: image.width, height: image.height, indices: CRFScores.mask(scores: scores, classes: classes, plane: plane),
                                           palette: VOCPalette.colors), to: folder.crfMasks.png(id))
            }
            // The 20-class mask last: its presence marks the image done.
            let mask = CAMInference.mask(maps: result.parentMaps, classes: classes, plane: plane, threshold: settings.threshold)
            try PNG.write(IndexedImage(width: image.width, height: image.height, indices: mask, palette: VOCPalette.colors),
                          to: folder.masks.png(id))
        }
    }
}
