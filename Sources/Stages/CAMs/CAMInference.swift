import Data
import Formats
import Foundation
import Workflow
import Kernels
import Network

/// Multi-scale + flip class activation maps (spec 6.1-6.2), normalised per
/// class, and the masks made from them.
public enum CAMInference {
    public struct Result: Sendable {
        public let width: Int
        public let height: Int
        /// The present parent classes (0-based), ascending.
        public let classes: [Int]
        /// [classes.count, height, width]: each present class's map divided by its maximum + 1e-5.
        public let parentMaps: [Float]
        /// Rounds >= 1: [classes.count, k, height, width], each parent's k maps
        /// divided by one common maximum + 1e-5.
        public let subcategoryMaps: [Float]?
        public let k: Int
    }

    /// The reference's background threshold for SC-CAM (psa used 0.2).
    public static let defaultThreshold: Float = 0.15

    public static func run(network: SCCAMNetwork, image: RGBImage, classes present: [Int],
                           scales: [Double] = InferenceViews.referenceScales) -> Result {
        let (width, height) = (image.width, image.height)
        let plane = width * height
        let k = network.configuration.subcategoriesPerClass
        let hasSub = network.configuration.hasSubcategoryHead
        var parentSum = [Float](repeating: 0, count: present.count * plane)
        var subSum = [Float](repeating: 0, count: hasSub ? present.count * k * plane : 0)
        var resized = [Float](repeating: 0, count: plane)
        for view in InferenceViews.make(image, scales: scales) {
            _ = view.tensor.withUnsafeBufferPointer { network.forward(input: $0.baseAddress!, batch: 1, height: view.height, width: view.width) }
            let (h, w) = network.mapSize
            // Sum in view order; absent classes are multiplied by 0, so only present ones are kept.
            func accumulate(_ maps: [Float], channel: Int, into sum: inout [Float], at slot: Int) {
                maps.withUnsafeBufferPointer { source in
                    resized.withUnsafeMutableBufferPointer { target in
                        BilinearResize.resize(source.baseAddress! + channel * h * w, planes: 1, height: h, width: w,
                                              output: target.baseAddress!, newHeight: height, newWidth: width)
                    }
                }
                for y in 0..<height {
                    let row = y * width
                    for x in 0..<width {
                        sum[slot * plane + row + x] += resized[row + (view.flipped ? width - 1 - x : x)]
                    }
                }
            }
            let parents = network.classActivationMaps(head: 0)
            for (slot, c) in present.enumerated() { accumulate(parents, channel: c, into: &parentSum, at: slot) }
            if hasSub {
                let subs = network.classActivationMaps(head: 1)
                for (slot, c) in present.enumerated() {
                    for j in 0..<k { accumulate(subs, channel: c * k + j, into: &subSum, at: slot * k + j) }
                }
            }
        }
        for slot in present.indices {
            let maximum = parentSum[(slot * plane)..<((slot + 1) * plane)].max() ?? 0
            for i in (slot * plane)..<((slot + 1) * plane) { parentSum[i] /= maximum + 1e-5 }
            if hasSub {
                let group = (slot * k * plane)..<((slot + 1) * k * plane)
                let maximum = subSum[group].max() ?? 0
                for i in group { subSum[i] /= maximum + 1e-5 }
            }
        }
        return Result(width: width, height: height, classes: present, parentMaps: parentSum,
                      subcategoryMaps: hasSub ? subSum : nil, k: k)
    }

    /// Class ids 0...20 per pixel: background where no present class's score
    /// exceeds `threshold` (background wins ties), else the first best class + 1.
    public static func mask(maps: [Float], classes: [Int], plane: Int, threshold: Float = defaultThreshold) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plane)
        for i in 0..<plane {
            var best = threshold, label: UInt8 = 0
            for (slot, c) in classes.enumerated() where maps[slot * plane + i] > best {
                best = maps[slot * plane + i]
                label = UInt8(c + 1)
            }
            out[i] = label
        }
        return out
    }

    /// The sub-category path's parent maps: per present class, the pixel-wise
    /// maximum of its k normalised sub-maps.
    public static func mergedSubcategoryMaps(_ result: Result) -> [Float]? {
        guard let subs = result.subcategoryMaps else { return nil }
        let plane = result.width * result.height
        var merged = [Float](repeating: 0, count: result.classes.count * plane)
        for slot in result.classes.indices {
            for j in 0..<result.k {
                let base = (slot * result.k + j) * plane
                for i in 0..<plane { merged[slot * plane + i] = max(merged[slot * plane + i], subs[base + i]) }
            }
        }
        return merged
    }

    /// The image with each present class's map as a heat map beside it: tiles
    /// [image | class 1 | class 2 ...], each map blended over the image.
    public static func overlay(image: RGBImage, result: Result) -> RGBImage {
        let (w, h) = (image.width, image.height)
        let tiles = 1 + result.classes.count
        var out = RGBImage(width: w * tiles, height: h)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 { out.pixels[3 * (y * w * tiles + x) + c] = image.pixels[3 * (y * w + x) + c] }
                for slot in result.classes.indices {
                    let value = result.parentMaps[slot * w * h + y * w + x]
                    let heat = heatColor(value)
                    let target = 3 * (y * w * tiles + (slot + 1) * w + x)
                    for c in 0..<3 {
                        out.pixels[target + c] = UInt8((Int(image.pixels[3 * (y * w + x) + c]) + 2 * Int(heat[c])) / 3)
                    }
                }
            }
        }
        return out
    }

    /// matplotlib's "hot" colour map: black, red, yellow, white.
    static func heatColor(_ value: Float) -> [UInt8] {
        let v = max(0, min(1, value))
        let r = min(1, v / 0.365), g = max(0, min(1, (v - 0.365) / 0.381)), b = max(0, min(1, (v - 0.746) / 0.254))
        return [UInt8(r * 255), UInt8(g * 255), UInt8(b * 255)]
    }
}
