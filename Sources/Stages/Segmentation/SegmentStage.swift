import Data
import DenseCRF
import Distributed
import Formats
import Foundation
import Kernels
import Network
import Workflow

/// `segment`: DeepLab-v2's test path (deeplab-v2.md 5.1) for every
/// image of a list: native size, no padding, batch 1; the MSC max of the
/// logits, upsampled bilinearly to the image, softmax, argmax; optionally the
/// dense CRF of 5.2 on those probabilities. Each rank takes a contiguous part
/// of the list and writes, per image and atomically:
/// - `segment/{id}.png`: 8-bit grey class ids (and `segment_crf/` with --crf);
/// - `segment_color/{id}.png`: the VOC palette copy; `segment_overlays/{id}.png`.
/// Images whose grey PNG (both, with the CRF) exists are skipped, so a killed run resumes.
public enum SegmentStage: Stage {
    public static let name = "segment"

    /// Which image the CRF's bilateral term sees.
    public enum CRFImage: String, Codable, Sendable, CaseIterable {
        /// The reference's `main.py crf`: the mean-subtracted BGR image cast to
        /// uint8 with wrap-around (x86 NumPy), channels in B, G, R order.
        case reference
        /// `demo.py --crf`: the image itself (R, G, B).
        case raw
    }

    public struct Settings: Codable, Sendable, Equatable {
        /// DeepLab: `train-seg`'s safetensors or deeplab-pytorch's checkpoint (.pth).
        public var weights: String
        /// The channel divisor of the network the weights belong to.
        public var widthDivisor = 1
        public var list = "val"
        /// How the MSC inputs are resized (ratio: PyTorch <= 1.5, the reference's results).
        public var inputResize = BilinearResize.Rule.sizeRatio
        /// Also the dense CRF (10 iterations; Gaussian 1, 3; bilateral 67, 3, 4) on the probabilities, seeing this image.
        public var crf: CRFImage?
        public var crfParameters = CRFParameters.deeplab
        public var crfIterations = 10
        public var overlays = true

        public init(weights: String) { self.weights = weights }
    }

    public typealias Result = ImagePassResult

    public static func run(_ settings: Settings, in context: StageContext) throws -> ImagePassResult {
        try requireSetting([1, 2, 4, 8, 16, 32].contains(settings.widthDivisor), "--width-divisor must be a power of two up to 32")
        let dataset = try context.requireDataset(for: name)
        let list = try dataset.list(settings.list)
        try dataset.validate(list)
        let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: settings.widthDivisor, classes: dataset.labelCount,
                                                                    inputResize: settings.inputResize),
                                compute: context.compute)
        let (source, report) = try network.loadWeights(settings.weights)
        guard report.keptAtInitialization.isEmpty else {
            throw DataError("\(settings.weights) (\(source.rawValue)) has no trained ASPP: it is an initialisation, not a segmentation model; train it with sccam train-seg first")
        }
        context.log("segment: \(list.ids.count) images of \(list.source) with \(settings.weights) (width 1/\(settings.widthDivisor))\(settings.crf.map { ", CRF on the \($0.rawValue) image" } ?? "") on \(context.communicator.size) rank(s)")
        return ImagePassResult(try segment(network: network, dataset: dataset, list: list, settings: settings, context: context))
    }

    /// Class probabilities [classes, H, W] of an image: the MSC logits,
    /// upsampled to the image, softmax over classes.
    public static func probabilities(network: DeepLabV2, image: RGBImage) -> [Float] {
        let input = SegmentationAugmentation.evaluationInput(image)
        let logits = input.withUnsafeBufferPointer { network.predict(input: $0.baseAddress!, batch: 1, height: image.height, width: image.width) }
        let (h, w) = network.outputSize(height: image.height, width: image.width)
        let classes = network.configuration.classes, plane = image.width * image.height
        var upsampled = [Float](repeating: 0, count: classes * plane)
        BilinearResize.resize(logits, planes: classes, height: h, width: w, output: &upsampled, newHeight: image.height, newWidth: image.width)
        for i in 0..<plane {
            var largest = -Float.infinity
            for c in 0..<classes { largest = max(largest, upsampled[c * plane + i]) }
            var sum: Float = 0
            for c in 0..<classes {
                let e = exp(upsampled[c * plane + i] - largest)
                upsampled[c * plane + i] = e
                sum += e
            }
            for c in 0..<classes { upsampled[c * plane + i] /= sum }
        }
        return upsampled
    }

    /// The first maximum per pixel of [classes, plane] scores.
    public static func argmax(_ scores: [Float], classes: Int, plane: Int) -> [UInt8] {
        (0..<plane).map { i in
            var best = 0
            for c in 1..<classes where scores[c * plane + i] > scores[best * plane + i] { best = c }
            return UInt8(best)
        }
    }

    /// The CRF's interleaved 3-channel image for `mode`.
    public static func crfPixels(_ image: RGBImage, mode: CRFImage) -> [UInt8] {
        guard mode == .reference else { return image.pixels }
        let input = SegmentationAugmentation.evaluationInput(image), plane = image.width * image.height
        var out = [UInt8](repeating: 0, count: 3 * plane)
        for i in 0..<plane {
            // float -> uint8 on x86 NumPy: truncation toward zero, then modulo 256.
            for c in 0..<3 { out[3 * i + c] = UInt8(truncatingIfNeeded: Int(input[c * plane + i])) }
        }
        return out
    }

    static func segment(network: DeepLabV2, dataset: any SegmentationDataset, list: ImageList, settings: Settings,
                        context: StageContext) throws -> ImageStage.Summary {
        let plain = context.layout.segmentation(crf: false), withCRF = context.layout.segmentation(crf: true)
        let classes = network.configuration.classes
        return try ImageStage.run(dataset: dataset, list: list, skipUnreadable: context.runtime.skipUnreadable,
                                  communicator: context.communicator, log: context.log, isDone: { id in
            FileManager.default.fileExists(atPath: plain.labels.png(id))
                && (settings.crf == nil || FileManager.default.fileExists(atPath: withCRF.labels.png(id)))
        }, read: { _, _ in () }) { id, image, _ in
            let plane = image.width * image.height
            var probabilities = probabilities(network: network, image: image)
            let labels = argmax(probabilities, classes: classes, plane: plane)
            if let mode = settings.crf {
                let pixels = crfPixels(image, mode: mode)
                let crf = pixels.withUnsafeBufferPointer {
                    DenseCRF(rgb: $0.baseAddress!, width: image.width, height: image.height, parameters: settings.crfParameters)
                }
                probabilities.withUnsafeMutableBufferPointer {
                    crf.inference(probabilities: $0.baseAddress!, labels: classes, iterations: settings.crfIterations, output: $0.baseAddress!)
                }
                let refined = argmax(probabilities, classes: classes, plane: plane)
                try PNG.write(IndexedImage(width: image.width, height: image.height, indices: refined, palette: VOCPalette.colors),
                              to: withCRF.colour.png(id))
                try PNG.write(IndexedImage(width: image.width, height: image.height, indices: refined),
                              to: withCRF.labels.png(id))
            }
            try PNG.write(IndexedImage(width: image.width, height: image.height, indices: labels, palette: VOCPalette.colors),
                          to: plain.colour.png(id))
            if settings.overlays, let overlays = plain.overlays {
                try PNG.write(RefineStage.overlay(image: image, labels: labels), to: overlays.png(id))
            }
            // The grey PNG last: its presence marks the image done.
            try PNG.write(IndexedImage(width: image.width, height: image.height, indices: labels), to: plain.labels.png(id))
        }
    }
}
