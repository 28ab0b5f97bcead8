import Data
import DenseCRF
import Distributed
import Formats
import Foundation
import Network

/// `sccam infer`: each rank takes a contiguous part of the list and writes,
/// per image and atomically, into the work folder:
/// - `cams/{id}.npy`: float32 [C, H, W], the normalised maps of the C present
///   classes, and `cams/{id}.classes.npy`: int32 [C], their class indices (0-19);
/// - `masks/{id}.png`: VOC palette PNG from the 20-class maps;
/// - `masks_sub/{id}.png`: the same from the sub-category maps (rounds >= 1);
/// - `overlays/{id}.png`: the image and a heat map per present class, side by side;
/// - with `crfAlpha`, `masks_crf/{id}.png`: SC-CAM's optional dCRF masks, the
///   argmax of the dense CRF (psa's parameters, 10 iterations) of
///   `[(1 - max CAM)^alpha, CAMs]` on the image.
/// Images whose outputs all exist are skipped, so a killed run resumes.
public enum Inference {
    public struct Options: Sendable {
        public var work: String
        public var threshold: Float
        public var scales: [Double]
        public var overlays: Bool
        public var skipUnreadable: Bool
        /// Also write CRF masks with this background power (SC-CAM's dCRF), or none.
        public var crfAlpha: Float?
        public init(work: String, threshold: Float = CAMInference.defaultThreshold, scales: [Double] = InferenceViews.referenceScales,
                    overlays: Bool = true, skipUnreadable: Bool = false, crfAlpha: Float? = nil) {
            self.crfAlpha = crfAlpha
            self.work = work
            self.threshold = threshold
            self.scales = scales
            self.overlays = overlays
            self.skipUnreadable = skipUnreadable
        }
    }

    public typealias Summary = ImageStage.Summary

    public static func run(network: SCCAMNetwork, dataset: VOCDataset, list: ImageList, labels: ImageLabels, options: Options,
                           communicator: Communicator, log: (String) -> Void) throws -> Summary {
        let hasSub = network.configuration.hasSubcategoryHead
        let crfWorkspace = CRFWorkspace()
        return try ImageStage.run(dataset: dataset, list: list, skipUnreadable: options.skipUnreadable, communicator: communicator, log: log,
                                  isDone: { id in
            let outputs = ["cams/\(id).npy", "cams/\(id).classes.npy", "masks/\(id).png"]
                + (hasSub ? ["masks_sub/\(id).png"] : []) + (options.overlays ? ["overlays/\(id).png"] : [])
                + (options.crfAlpha != nil ? ["masks_crf/\(id).png"] : [])
            return outputs.allSatisfy { FileManager.default.fileExists(atPath: "\(options.work)/\($0)") }
        }, read: { _, _ in () }) { id, image, _ in
            let classes = labels.classes[id] ?? []
            let result = CAMInference.run(network: network, image: image, classes: classes, scales: options.scales)
            let plane = image.width * image.height
            try NPY.write(result.parentMaps, shape: [classes.count, image.height, image.width], to: "\(options.work)/cams/\(id).npy")
            try NPY.write(classes.map { Int32($0) }, shape: [classes.count], to: "\(options.work)/cams/\(id).classes.npy")
            if options.overlays {
                try PNG.write(CAMInference.overlay(image: image, result: result), to: "\(options.work)/overlays/\(id).png")
            }
            if let merged = CAMInference.mergedSubcategoryMaps(result) {
                let mask = CAMInference.mask(maps: merged, classes: classes, plane: plane, threshold: options.threshold)
                try PNG.write(IndexedImage(width: image.width, height: image.height, indices: mask, palette: VOCPalette.colors),
                              to: "\(options.work)/masks_sub/\(id).png")
            }
            if let alpha = options.crfAlpha {
                let cams = CRFScores.CAMs(classes: classes, maps: result.parentMaps, width: image.width, height: image.height)
                let scores = CRFScores.infer(CRFScores.makeCRF(image: image), stack: CRFScores.backgroundStack(cams, alpha: alpha),
                                             labels: 1 + classes.count, workspace: crfWorkspace)
                try PNG.write(IndexedImage(width: image.width, height: image.height, indices: CRFScores.mask(scores: scores, classes: classes, plane: plane),
                                           palette: VOCPalette.colors), to: "\(options.work)/masks_crf/\(id).png")
            }
            // The 20-class mask last: its presence marks the image done.
            let mask = CAMInference.mask(maps: result.parentMaps, classes: classes, plane: plane, threshold: options.threshold)
            try PNG.write(IndexedImage(width: image.width, height: image.height, indices: mask, palette: VOCPalette.colors),
                          to: "\(options.work)/masks/\(id).png")
        }
    }
}
