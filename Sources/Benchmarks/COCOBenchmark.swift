import Data
import Foundation
import Stages

/// Reading COCO's instances file and drawing its masks: the parse alone (what
/// pycocotools' `COCO(file)` does, to compare with it), then the class masks
/// of the first images, with the process's peak memory.
public enum COCOBenchmark {
    public struct Report: Sendable {
        public let bytes: Int
        public let images: Int
        public let annotations: Int
        public let parseSeconds: [Double]
        public let maskImages: Int
        public let maskSeconds: Double
        public let peakResidentBytes: Int

        public var lines: [String] {
            [String(format: "parsed %.0f MB, %d images, %d annotations: best %.2f s of %d (%@)", Double(bytes) / 1e6, images, annotations,
                    parseSeconds.min() ?? .nan, parseSeconds.count, parseSeconds.map { String(format: "%.2f", $0) }.joined(separator: ", ")),
             String(format: "class masks (coco2voc) of %d images: %.2f s, %.1f images/s", maskImages, maskSeconds,
                    Double(maskImages) / max(maskSeconds, 1e-9)),
             String(format: "peak resident memory %.2f GB", Double(peakResidentBytes) / 1e9)]
        }
    }

    public static func run(annotations path: String, repeats: Int, maskImages: Int) throws -> Report {
        var times: [Double] = []
        var coco: COCOAnnotations!
        for _ in 0..<max(1, repeats) {
            let start = DispatchTime.now().uptimeNanoseconds
            coco = try COCOAnnotations.read(path)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let count = min(maskImages, coco.images.count)
        let start = DispatchTime.now().uptimeNanoseconds
        for index in 0..<count { _ = try PrepareCOCOStage.classMask(coco, image: index, convention: .coco2voc) }
        let maskSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        return Report(bytes: bytes, images: coco.images.count, annotations: coco.annotations.count, parseSeconds: times,
                      maskImages: count, maskSeconds: maskSeconds, peakResidentBytes: NetworkBenchmark.peakResidentBytes())
    }
}
