import Data
import DenseCRF
import Formats
import Foundation
import Kernels
import Stages
import Workflow

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
        /// Set-up plus inference(10), per repeat.
        public let imageSeconds: [Double]
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

    /// Best of `repeats` for each part and thread count. Every repeat runs all
    /// thread counts back to back, so that they meet the same machine (a
    /// virtual machine's speed drifts by tens of percent within a minute):
    /// `imageSeconds` keeps each repeat's per-image time for paired ratios.
    public static func run(labels: Int, preset: String, parameters: CRFParameters, repeats: Int, threadCounts: [Int],
                           image: RGBImage, probabilities: [Float]) -> [Result] {
        let saved = Parallel.threadCount
        defer { Parallel.setThreadCount(saved) }
        var setup = [Double](repeating: .infinity, count: threadCounts.count)
        var full = setup, unaryOnly = setup
        var imageSeconds = [[Double]](repeating: [], count: threadCounts.count)
        var vertexCounts: [Int] = []
        var output = [Float](repeating: 0, count: probabilities.count)
        let workspace = CRFWorkspace()
        for _ in 0..<repeats {
            for (k, threads) in threadCounts.enumerated() {
                Parallel.setThreadCount(threads)
                var crf: DenseCRF!
                let made = seconds { crf = CRFScores.makeCRF(image: image, parameters: parameters) }
                var zero = 0.0, ten = 0.0
                output.withUnsafeMutableBufferPointer { out in
                    zero = seconds { crf.inference(probabilities: probabilities, labels: labels, iterations: 0, output: out.baseAddress!, workspace: workspace) }
                    ten = seconds { crf.inference(probabilities: probabilities, labels: labels, iterations: 10, output: out.baseAddress!, workspace: workspace) }
                }
                setup[k] = min(setup[k], made)
                unaryOnly[k] = min(unaryOnly[k], zero)
                full[k] = min(full[k], ten)
                imageSeconds[k].append(made + ten)
                vertexCounts = crf.vertexCounts
            }
        }
        return threadCounts.indices.map { k in
            Result(labels: labels, preset: preset, threads: threadCounts[k], setupSeconds: setup[k], inferenceSeconds: full[k],
                   secondsPerIteration: (full[k] - unaryOnly[k]) / 10, vertexCounts: vertexCounts, imageSeconds: imageSeconds[k])
        }
    }

    /// The median over repeats of `base`'s per-image time over `other`'s (same repeat).
    public static func pairedSpeedup(of other: Result, over base: Result) -> Double {
        var ratios = zip(base.imageSeconds, other.imageSeconds).map { $0 / $1 }.sorted()
        guard !ratios.isEmpty else { return .nan }
        let middle = ratios.count / 2
        if ratios.count % 2 == 1 { return ratios[middle] }
        ratios = Array(ratios[(middle - 1)...middle])
        return (ratios[0] + ratios[1]) / 2
    }
}
