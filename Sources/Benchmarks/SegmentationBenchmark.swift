import Foundation
import Kernels
import Network
import Stages
import Workflow

/// `sccam bench segment`: DeepLab-v2 training steps at 321 (MSC forward,
/// the four-output loss, backward into every convolution, the optimiser at
/// learning rate 0) and MSC test forwards at 513, against this machine's sgemm.
public enum SegmentationBenchmark {
    public struct Report: Sendable {
        public let trainSeconds: [Double]
        public let trainGFLOP: Double
        public let testSeconds: [Double]
        public let testGFLOP: Double
        public let sgemmGFLOPS: Double
        public let peakResidentBytes: Int
    }

    /// With SCCAM_PROFILE=1: where the last step's time went.
    static func phases() -> String {
        guard PhaseProfiler.isEnabled else { return "" }
        defer { PhaseProfiler.reset() }
        return " (" + PhaseProfiler.seconds.map { String(format: "%@ %.2f s", $0.0.name, $0.1) }.joined(separator: ", ") + ")"
    }

    public static func run(widthDivisor: Int, batch: Int, crop: Int, testSize: Int, steps: Int, compute: Compute,
                           log: (String) -> Void) throws -> Report {
        let sgemm = (0..<3).map { _ in GEMMProbe.measure(size: 2048, seconds: 0.5).gflops }.max()!
        log(String(format: "sgemm 2048: %.1f GFLOP/s on %d thread(s) (%@)", sgemm, Parallel.threadCount, BLASRuntime.coreName))
        let network = DeepLabV2(configuration: DeepLabConfiguration(widthDivisor: widthDivisor), compute: compute)
        network.initialize(seed: 1, residualBranchScale: ClassifierTrainingStage.scratchBranchScale)
        let optimizer = PolySGD(store: network.store, baseLearningRate: 0, maxStep: steps + 1, momentum: 0.9, stepSize: 10)
        let random = CounterRandom(seed: 9)
        let images = (0..<(batch * 3 * crop * crop)).map { Float(random.uniform(1, UInt64($0), 0, 0) * 100 - 50) }
        let labels = (0..<(batch * crop * crop)).map { Int32($0 % 23 == 22 ? 255 : $0 % 21) }
        PhaseProfiler.reset()
        var train: [Double] = []
        for step in 0..<steps {
            let start = DispatchTime.now().uptimeNanoseconds
            let loss = try network.trainingStep(input: images, labels: labels, batch: batch, height: crop, width: crop, weight: 0.5)
            optimizer.apply(to: network.store)
            train.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            log(String(format: "train step %d: %.2f s, loss %.4f", step + 1, train.last!, loss.total) + phases())
        }
        let test = (0..<(3 * testSize * testSize)).map { Float(random.uniform(2, UInt64($0), 0, 0) * 100 - 50) }
        var forward: [Double] = []
        for step in 0..<steps {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = network.predict(input: test, batch: 1, height: testSize, width: testSize)
            forward.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            log(String(format: "test forward %d: %.2f s", step + 1, forward.last!) + phases())
        }
        return Report(trainSeconds: train, trainGFLOP: 2 * Double(batch * network.trainingMACs(height: crop, width: crop)) / 1e9,
                      testSeconds: forward, testGFLOP: 2 * Double(network.macs(height: testSize, width: testSize)) / 1e9,
                      sgemmGFLOPS: sgemm, peakResidentBytes: NetworkBenchmark.peakResidentBytes())
    }
}
