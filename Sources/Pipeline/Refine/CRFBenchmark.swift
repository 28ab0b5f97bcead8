import Data
import DenseCRF
import Formats
import Foundation
import Kernels

/// `sccam bench crf`: the dense CRF on a VOC-sized photo-like image with
/// smooth synthetic probabilities, per preset and label count.
public enum CRFBenchmark {
    public struct Result: Sendable {
        public let labels: Int
        public let preset: String
        public let threads: Int
        /// Lattice construction and normalisation (once per image).
        public let setupSeconds: Double
        /// inference(10), setup excluded.
        public let inferenceSeconds: Double
        /// (inference(10) - inference(0)) / 10.
        public let secondsPerIteration: Double
        public let vertexCounts: [Int]
        public var secondsPerImage: Double { setupSeconds + inferenceSeconds }
    }

    public static let width = 500, height = 375

    public static func image() -> RGBImage { PhotoLikeImage.make(width: width, height: height, seed: 11) }

    /// Smooth probabilities [labels][H][W]: a softmax of a few soft blobs per label.
    public static func probabilities(labels: Int) -> [Float] {
        let random = CounterRandom(seed: UInt64(labels))
        let plane = width * height
        var logits = [Float](repeating: 0, count: labels * plane)
        for l in 0..<labels {
            let cx = random.uniform(UInt64(l), 1, 0, 0) * Double(width), cy = random.uniform(UInt64(l), 2, 0, 0) * Double(height)
            let radius = 40 + random.uniform(UInt64(l), 3, 0, 0) * 120
            for y in 0..<height {
                for x in 0..<width {
                    let r2 = ((Double(x) - cx) * (Double(x) - cx) + (Double(y) - cy) * (Double(y) - cy)) / (radius * radius)
                    logits[l * plane + y * width + x] = Float(3 * exp(-r2) + 0.3 * sin(Double(x + 7 * l) * 0.05) * cos(Double(y) * 0.07))
                }
            }
        }
        var p = logits
        for i in 0..<plane {
            var sum: Float = 0
            for l in 0..<labels { p[l * plane + i] = expf(logits[l * plane + i]); sum += p[l * plane + i] }
            for l in 0..<labels { p[l * plane + i] /= sum }
        }
        return p
    }

    static func seconds(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Best of `repeats` for each part, on the current thread count.
    public static func run(labels: Int, preset: String, parameters: CRFParameters, repeats: Int, image: RGBImage,
                           probabilities: [Float]) -> Result {
        var setup = Double.infinity, full = Double.infinity, unaryOnly = Double.infinity
        var crf: DenseCRF!
        var output = [Float](repeating: 0, count: probabilities.count)
        let workspace = CRFWorkspace()
        for _ in 0..<repeats {
            setup = min(setup, seconds { crf = CRFScores.makeCRF(image: image, parameters: parameters) })
            output.withUnsafeMutableBufferPointer { out in
                unaryOnly = min(unaryOnly, seconds { crf.inference(probabilities: probabilities, labels: labels, iterations: 0, output: out.baseAddress!, workspace: workspace) })
                full = min(full, seconds { crf.inference(probabilities: probabilities, labels: labels, iterations: 10, output: out.baseAddress!, workspace: workspace) })
            }
        }
        return Result(labels: labels, preset: preset, threads: Parallel.threadCount, setupSeconds: setup, inferenceSeconds: full,
                      secondsPerIteration: (full - unaryOnly) / 10, vertexCounts: crf.vertexCounts)
    }
}
