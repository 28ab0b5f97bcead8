import Data
import Foundation
import Kernels
import Network
import Stages
import Workflow

/// `sccam bench refine`: psa's random walk on a 500 x 375 image, AffinityNet
/// (He-initialised, any width) on the padded image, then the walk of 21
/// score channels the fast way (sparse products) and psa's way (dense
/// squaring), with the machine's sgemm rate for scale.
public enum RefineBenchmark {
    public struct Report: Sendable {
        public let width: Int, height: Int, cells: Int
        public let meanColumnEntries: Double
        public let networkSeconds: Double
        public let transitionSeconds: Double
        public let sparseWalkSeconds: Double
        public let denseWalkSeconds: Double
        public let denseGFLOP: Double
        public let sgemmGFLOPS: Double
        public let maxRelativeDifference: Double
        public let labelsAgree: Double
    }

    static func seconds<T>(_ body: () -> T) -> (T, Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        let value = body()
        return (value, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    public static func run(widthDivisor: Int, repeats: Int, compute: Compute, log: (String) -> Void) -> Report {
        let width = 500, height = 375
        let sgemm = (0..<3).map { _ in GEMMProbe.measure(size: 2048, seconds: 0.5).gflops }.max()!
        log(String(format: "sgemm 2048: %.1f GFLOP/s on %d thread(s)", sgemm, Parallel.threadCount))
        let image = PhotoLikeImage.make(width: width, height: height, seed: 5)
        let network = AffinityNetwork(widthDivisor: widthDivisor, compute: compute)
        network.initializeBackbone(seed: 1, residualBranchScale: 0.1)
        // Two classes with smooth CAMs.
        let classes = [4, 14], plane = width * height
        var maps = [Float](repeating: 0, count: classes.count * plane)
        for (k, _) in classes.enumerated() {
            for y in 0..<height {
                for x in 0..<width {
                    let dx = Double(x) - Double(width) * (0.3 + 0.4 * Double(k)), dy = Double(y) - Double(height) / 2
                    maps[k * plane + y * width + x] = Float(exp(-(dx * dx + dy * dy) / (2 * 80 * 80)))
                }
            }
        }
        let g = RandomWalk.Geometry(height: height, width: width)
        var best = (network: Double.infinity, transition: Double.infinity, sparse: Double.infinity, dense: Double.infinity)
        var sparse: [Double] = [], dense: [Float] = [], transition: RandomWalk.Transition!
        let pooled = RandomWalk.pooledScores(cams: maps, classes: classes, geometry: g, alpha: 16)
        for _ in 0..<repeats {
            let (affinities, networkTime) = seconds { RefineStage.affinities(network: network, image: image) }
            let (t, transitionTime) = seconds { RandomWalk.transition(affinities: affinities, pairs: network.pairs, beta: 8) }
            transition = t
            let (s, sparseTime) = seconds { RandomWalk.walk(pooled, channels: 21, transition: t, logT: 8) }
            let (d, denseTime) = seconds { RandomWalk.walkDense(pooled, channels: 21, transition: t, logT: 8) }
            (sparse, dense) = (s, d)
            best = (min(best.network, networkTime), min(best.transition, transitionTime), min(best.sparse, sparseTime), min(best.dense, denseTime))
            log(String(format: "AffinityNet %.2f s, transition %.4f s, sparse walk %.4f s, dense squaring %.2f s", networkTime,
                       transitionTime, sparseTime, denseTime))
        }
        let scale = dense.map { abs(Double($0)) }.max()!
        let difference = zip(sparse, dense).map { abs($0 - Double($1)) }.max()! / scale
        let a = RandomWalk.labels(walked: sparse, channels: 21, geometry: g), b = RandomWalk.labels(walked: dense.map(Double.init), channels: 21, geometry: g)
        let agree = Double(zip(a, b).filter { $0 == $1 }.count) / Double(a.count)
        let n = Double(g.cells)
        return Report(width: width, height: height, cells: g.cells, meanColumnEntries: transition.meanColumnCount,
                      networkSeconds: best.network, transitionSeconds: best.transition, sparseWalkSeconds: best.sparse,
                      denseWalkSeconds: best.dense, denseGFLOP: (8 * 2 * n * n * n + 2 * 21 * n * n) / 1e9, sgemmGFLOPS: sgemm,
                      maxRelativeDifference: difference, labelsAgree: agree)
    }
}
