import Data
import Distributed
import Formats
import Foundation
import Kernels
import Network
import Stages
import TrainingLoop
import Workflow

/// Full-width training steps through the real loop (loader, forward,
/// backward, bucketed allreduce, optimiser) on synthetic 500x375 JPEGs.
///
/// The setup cannot diverge, so the benchmark never depends on float
/// rounding: the optimiser runs every step (momentum, weight decay, the
/// update) at a learning rate of zero, so the weights, and with them the
/// finite first-step gradients, stay as initialised; and the residual
/// branches start at the from-scratch scale so activations stay moderate.
public enum TrainingBenchmark {
    public static let setupDescription = "learning rate 0 with the optimiser still running every step, He initialisation with residual branches x\(ClassifierTrainingStage.scratchBranchScale): the weights never move, so the run cannot diverge"

    public struct Result: Sendable {
        public let steps: Int
        public let secondsPerStep: Double
        public let imagesPerSecond: Double
        public let communicationFraction: Double
        /// The same exchange of the whole gradient buffer with nothing computing (best of 3, slowest rank).
        public let allreduceAloneSeconds: Double
        /// The timed steps' exchange (nil on one rank).
        public let exchange: GradientExchange.Statistics?
        public let gradientBytes: Int
        /// With SCCAM_PROFILE=1: rank 0's seconds per step in each profiled phase (empty otherwise).
        public let phaseSecondsPerStep: [(phase: PhaseProfiler.Phase, seconds: Double)]
    }

    public static func run(globalBatch: Int, steps: Int, widthDivisor: Int, cropSize: Int, compute: Compute,
                           exchange: GradientExchange.Settings = GradientExchange.Settings(), folder: String,
                           communicator: Communicator) throws -> Result {
        let images = globalBatch * (steps + 1)
        if communicator.isRoot {
            for i in 0..<images {
                let path = "\(folder)/JPEGImages/\(String(format: "2012_%06d", i)).jpg"
                if !FileManager.default.fileExists(atPath: path) {
                    try JPEG.write(PhotoLikeImage.make(width: 500, height: 375, seed: UInt64(i)), to: path, quality: 90)
                }
            }
        }
        try communicator.barrier()
        let ids = (0..<images).map { String(format: "2012_%06d", $0) }
        let targets = [ids.indices.map { i -> [Float] in var t = [Float](repeating: 0, count: 20); t[i % 20] = 1; return t },
                       ids.indices.map { i -> [Float] in var t = [Float](repeating: 0, count: 200); t[(i % 20) * 10 + i % 10] = 1; return t }]
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: widthDivisor, round: 1), compute: compute)
        network.initializeBackbone(seed: 1, residualBranchScale: ClassifierTrainingStage.scratchBranchScale)
        network.initializeHeads(seed: 1)
        // One warm-up epoch of a single step (plans and first-touches memory), then the timed steps.
        var options = Training.Options(round: 1, epochs: 1, globalBatch: globalBatch, learningRate: 0, cropSize: cropSize,
                                       layout: WorkLayout(folder).benchmarkRun(ranks: communicator.size))
        options.checkpointEvery = 1_000_000
        options.logEvery = 1_000_000
        options.exchange = exchange
        let dataset = try VOCDataset(root: folder)
        let warmIDs = Array(ids.prefix(globalBatch))
        let context = StageContext(communicator: communicator, layout: options.layout, log: { _ in }, warn: { _ in })
        _ = try ClassifierTrainingStage.train(network: network, dataset: dataset, ids: warmIDs,
                                              targets: targets.map { Array($0.prefix(globalBatch)) }, options: options, context: context)
        let timedIDs = Array(ids.prefix(globalBatch * steps))
        PhaseProfiler.reset()
        let summary = try ClassifierTrainingStage.train(network: network, dataset: dataset, ids: timedIDs,
                                                        targets: targets.map { Array($0.prefix(globalBatch * steps)) }, options: options,
                                                        context: context)
        var times = [summary.stepSeconds, summary.communicationWaitSeconds]
        try communicator.allreduceMax(&times)
        return Result(steps: summary.steps, secondsPerStep: times[0] / Double(summary.steps),
                      imagesPerSecond: Double(summary.steps * globalBatch) / times[0], communicationFraction: times[1] / times[0],
                      allreduceAloneSeconds: try allreduceAlone(network.store.gradients, exchange: exchange, communicator: communicator),
                      exchange: summary.exchange, gradientBytes: network.store.gradients.count * MemoryLayout<Float>.stride,
                      phaseSecondsPerStep: PhaseProfiler.isEnabled
                        ? PhaseProfiler.seconds.filter { $0.1 > 0 }.map { ($0.0, $0.1 / Double(summary.steps)) } : [])
    }

    /// What the exchange costs when nothing hides it: every bucket queued at once.
    static func allreduceAlone(_ gradients: UnsafeMutableBufferPointer<Float>, exchange settings: GradientExchange.Settings,
                               communicator: Communicator) throws -> Double {
        guard communicator.size > 1 else { return 0 }
        let exchange = try GradientExchange(communicator: communicator, gradients: gradients, settings: settings)
        defer { exchange.close() }
        var times: [Double] = []
        for _ in 0..<3 {
            try communicator.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            exchange.beginStep()
            exchange.gradientsReady(from: 0)
            _ = try exchange.finishStep()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        try communicator.allreduceMax(&times)
        return times.min()!
    }
}
