import Foundation
import Kernels
import Network
import Stages
import Workflow

/// `sccam bench train-aff`: full AffinityNet training steps (forward, psa's
/// loss, backward, the optimiser at learning rate 0) on synthetic crops and
/// pair labels, against this machine's sgemm rate.
public enum AffinityTrainingBenchmark {
    public struct Report: Sendable {
        public let secondsPerStep: [Double]
        public let gflopPerStep: Double
        public let sgemmGFLOPS: Double
        public let workspaceBytes: Int
        public let peakResidentBytes: Int
    }

    public static func run(widthDivisor: Int, batch: Int, crop: Int, steps: Int, compute: Compute, log: (String) -> Void) -> Report {
        let sgemm = (0..<3).map { _ in GEMMProbe.measure(size: 2048, seconds: 0.5).gflops }.max()!
        log(String(format: "sgemm 2048: %.1f GFLOP/s on %d thread(s) (%@)", sgemm, Parallel.threadCount, BLASRuntime.coreName))
        let network = AffinityNetwork(widthDivisor: widthDivisor, compute: compute)
        network.initializeBackbone(seed: 1, residualBranchScale: ClassifierTrainingStage.scratchBranchScale)
        let optimizer = PolySGD(store: network.store, baseLearningRate: 0, maxStep: steps + 1, headPrefixes: AffinityNetwork.headPrefixes)
        let random = CounterRandom(seed: 9)
        let images = (0..<(batch * 3 * crop * crop)).map { Float(random.uniform(1, UInt64($0), 0, 0) * 2 - 1) }
        let pairs = PairGeometry(height: crop / 8, width: crop / 8).pairCount
        // A third of the pairs of each kind.
        let kinds = (0..<(batch * pairs)).map { $0 % 3 }
        let labels = AffinityLoss.Labels(batch: batch, pairsPerImage: pairs, backgroundPositive: kinds.map { $0 == 0 ? 1 : 0 },
                                         foregroundPositive: kinds.map { $0 == 1 ? 1 : 0 }, negative: kinds.map { $0 == 2 ? 1 : 0 })
        var times: [Double] = []
        for step in 0..<steps {
            let start = DispatchTime.now().uptimeNanoseconds
            images.withUnsafeBufferPointer { input in
                _ = network.forward(input: input.baseAddress!, batch: batch, height: crop, width: crop,
                                    mode: .training(dropout: DropoutContext(random: random, step: step, firstSampleIndex: 0), inputGradient: false))
            }
            let loss = network.backward(labels: labels)
            optimizer.apply(to: network.store)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            times.append(seconds)
            log(String(format: "step %d: %.2f s, loss %.4f", step + 1, seconds, loss.total))
        }
        return Report(secondsPerStep: times, gflopPerStep: 2 * Double(network.trainingMACs(height: crop, width: crop) * batch) / 1e9,
                      sgemmGFLOPS: sgemm, workspaceBytes: network.workspaceBytes, peakResidentBytes: NetworkBenchmark.peakResidentBytes())
    }
}
