import Data
import DenseCRF
import Distributed
import Formats
import Foundation
import Kernels
import Network

/// `sccam segment`: DeepLab-v2's test path (deeplab-v2.md 5.1) for every
/// image of a list: native size, no padding, batch 1; the MSC max of the
/// logits, upsampled bilinearly to the image, softmax, argmax; optionally the
/// dense CRF of 5.2 on those probabilities. Each rank takes a contiguous part
/// of the list and writes, per image and atomically:
/// - `segment/{id}.png`: 8-bit grey class ids (and `segment_crf/` with --crf);
/// - `segment_color/{id}.png`: the VOC palette copy; `segment_overlays/{id}.png`.
/// Images whose grey PNG (both, with the CRF) exists are skipped, so a killed run resumes.
public enum SegmentStage {
    /// Which image the CRF's bilateral term sees.
    public enum CRFImage: String, Sendable, CaseIterable {
        /// The reference's `main.py crf`: the mean-subtracted BGR image cast to
        /// uint8 with wrap-around (x86 NumPy), channels in B, G, R order.
        case reference
        /// `demo.py --crf`: the image itself (R, G, B).
        case raw
    }

    public struct Options: Sendable {
        public var work: String
        public var crf: CRFImage?
        public var crfParameters = CRFParameters.deeplab
        public var crfIterations = 10
        public var overlays = true
        public var skipUnreadable = false

        public init(work: String, crf: CRFImage? = nil) {
            self.work = work
            self.crf = crf
        }
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

    public static func labelsPath(work: String, id: String, crf: Bool = false) -> String { "\(work)/\(crf ? "segment_crf" : "segment")/\(id).png" }

    public static func run(dataset: VOCDataset, list: ImageList, network: DeepLabV2, options: Options,
                           communicator: Communicator, log: (String) -> Void) throws -> ImageStage.Summary {
        let classes = network.configuration.classes
        return try ImageStage.run(dataset: dataset, list: list, skipUnreadable: options.skipUnreadable, communicator: communicator, log: log,
                                  isDone: { id in
            FileManager.default.fileExists(atPath: labelsPath(work: options.work, id: id))
                && (options.crf == nil || FileManager.default.fileExists(atPath: labelsPath(work: options.work, id: id, crf: true)))
        }, read: { _, _ in () }) { id, image, _ in
            let plane = image.width * image.height
            var probabilities = probabilities(network: network, image: image)
            let labels = argmax(probabilities, classes: classes, plane: plane)
            if let mode = options.crf {
                let pixels = crfPixels(image, mode: mode)
                let crf = pixels.withUnsafeBufferPointer {
                    DenseCRF(rgb: $0.baseAddress!, width: image.width, height: image.height, parameters: options.crfParameters)
                }
                probabilities.withUnsafeMutableBufferPointer {
                    crf.inference(probabilities: $0.baseAddress!, labels: classes, iterations: options.crfIterations, output: $0.baseAddress!)
                }
                let refined = argmax(probabilities, classes: classes, plane: plane)
                try PNG.write(IndexedImage(width: image.width, height: image.height, indices: refined, palette: VOCPalette.colors),
                              to: "\(options.work)/segment_crf_color/\(id).png")
                try PNG.write(IndexedImage(width: image.width, height: image.height, indices: refined),
                              to: labelsPath(work: options.work, id: id, crf: true))
            }
            try PNG.write(IndexedImage(width: image.width, height: image.height, indices: labels, palette: VOCPalette.colors),
                          to: "\(options.work)/segment_color/\(id).png")
            if options.overlays {
                try PNG.write(RefineStage.overlay(image: image, labels: labels), to: "\(options.work)/segment_overlays/\(id).png")
            }
            // The grey PNG last: its presence marks the image done.
            try PNG.write(IndexedImage(width: image.width, height: image.height, indices: labels), to: labelsPath(work: options.work, id: id))
        }
    }
}
