import Data
import Distributed
import Formats
import Foundation
import Kernels
import Network
import Workflow

/// Data-parallel training (spec 3): every rank computes its slice of each
/// global batch; gradients are summed across ranks by the `GradientExchange`,
/// bucket by bucket on a thread of its own as backward finishes the tail of
/// the network; every rank then applies the same PolySGD update.
public enum Training {
    /// Set by SIGTERM or SIGUSR1 (Slurm's pre-emption warning): the loop
    /// finishes its step, all ranks agree, and a checkpoint is written.
    nonisolated(unsafe) static var stopRequested: sig_atomic_t = 0

    /// Thrown after a requested stop, once the checkpoint is on disk.
    public struct Stopped: Error, CustomStringConvertible, Sendable {
        public let checkpoint: String
        public var description: String { "stopped on request after writing \(checkpoint); rerun with --resume to continue" }
    }

    /// Runs `body` with SIGTERM and SIGUSR1 asking the loop to stop at the
    /// next step (with a checkpoint, then `Stopped`); afterwards they end the
    /// process again, for stages that resume from their own outputs.
    public static func stoppable<T>(_ body: () throws -> T) rethrows -> T {
        signal(SIGTERM) { _ in Training.stopRequested = 1 }
        signal(SIGUSR1) { _ in Training.stopRequested = 1 }
        defer {
            signal(SIGTERM, SIG_DFL)
            signal(SIGUSR1, SIG_DFL)
        }
        return try body()
    }

    public struct Options: Sendable {
        public var round: Int
        public var epochs: Int
        public var globalBatch: Int
        public var learningRate: Float
        public var momentum: Float = PolySGD.referenceMomentum
        public var weightDecay: Float = PolySGD.referenceWeightDecay
        public var subcategoryWeight: Float = 5
        public var cropSize: Int
        /// The random resize of the long side before the crop (spec 3.3).
        public var longSide: ClosedRange<Int> = 256...512
        public var seed: UInt64 = 0
        /// Checkpoint after epochs e with e % checkpointEvery == 0, and after the last.
        public var checkpointEvery: Int = 10
        /// Where checkpoints and logs go.
        public var layout: WorkLayout
        public var resume: Bool = false
        /// Stop (with a checkpoint) after this many epochs of this run.
        public var stopAfterEpochs: Int?
        /// Stop (with a checkpoint) after this epoch index, however often the
        /// run was resumed: the pipeline keeps the schedule of all `epochs`
        /// but needs only the checkpoints the later stages use.
        public var lastEpochToTrain: Int?
        public var decodeThreads: Int = 1
        public var skipUnreadable: Bool = false
        public var logEvery: Int = 10
        /// Train this many steps (DeepLab: 20,000 iterations) instead of
        /// `epochs` whole epochs; `epochs` then only bounds the loop.
        public var maxSteps: Int?
        /// How gradients are summed across ranks while backward computes.
        public var exchange = GradientExchange.Settings()

        /// Checkpoints are named {prefix}_ep{e}; TensorBoard logs go to logs/{prefix}.
        public var checkpointPrefix: String

        public init(round: Int, epochs: Int, globalBatch: Int, learningRate: Float, cropSize: Int, layout: WorkLayout) {
            self.round = round
            checkpointPrefix = WorkLayout.roundPrefix(round)
            self.epochs = epochs
            self.globalBatch = globalBatch
            self.learningRate = learningRate
            self.cropSize = cropSize
            self.layout = layout
        }
    }

    public struct Summary: Sendable {
        public let steps: Int
        public let lastLoss: Double
        public let firstLoss: Double
        public let checkpoints: [String]
        public let communicationWaitSeconds: Double
        public let seconds: Double
        /// The steps alone: from asking for a batch to the end of its log line,
        /// without the set-up and the checkpoint writes that `seconds` includes.
        public var stepSeconds: Double = 0
        /// What the gradient exchange did (nil on one rank).
        public var exchange: GradientExchange.Statistics? = nil
    }

    /// The loop every network trains with: `model` supplies the batches and
    /// the forward and backward of a step; this does the schedule, the
    /// bucketed allreduce, the optimiser, logs, checkpoints, resume and stops.
    public static func run<Model: TrainingModel>(_ model: Model, imageCount: Int, options: Options,
                                                 communicator: Communicator, log: (String) -> Void) throws -> Summary {
        let start = DispatchTime.now().uptimeNanoseconds
        guard options.globalBatch % communicator.size == 0 else {
            throw DataError("a global batch of \(options.globalBatch) does not split over \(communicator.size) ranks; use a rank count that divides it (1, 2, 4, 8, 16 for 16)")
        }
        let schedule = EpochSchedule(count: imageCount, batchSize: options.globalBatch, seed: options.seed)
        guard schedule.batchesPerEpoch > 0 else {
            throw DataError("\(imageCount) images are fewer than one global batch of \(options.globalBatch)")
        }
        var options = options
        if let steps = options.maxSteps { options.epochs = (steps + schedule.batchesPerEpoch - 1) / schedule.batchesPerEpoch }
        let maxStep = options.maxSteps ?? schedule.batchesPerEpoch * options.epochs
        let groupRule: (ParameterStore.Entry) -> PolySGD.Group? = model.learningRateGroup
        let optimizer = PolySGD(store: model.store, baseLearningRate: options.learningRate, maxStep: maxStep,
                                weightDecay: options.weightDecay, momentum: options.momentum, headPrefixes: model.headPrefixes,
                                stepSize: model.learningRateStepSize,
                                group: model.learningRateGroup(model.store.entries[0]) == nil ? nil : { groupRule($0)! })
        var firstEpoch = 0, firstBatch = 0
        if options.resume, let path = latestCheckpoint(options) {
            let state = try Safetensors.read(path + WorkLayout.stateSuffix)
            try model.loadWeights(path + WorkLayout.weightsSuffix)
            let step = Int(state.metadata["sccam.step"] ?? "") ?? 0
            let epoch = Int(state.metadata["sccam.epoch"] ?? "") ?? 0
            let batch = Int(state.metadata["sccam.next_batch"] ?? "") ?? schedule.batchesPerEpoch
            guard let momentum = state.tensors.first(where: { $0.name == "momentum" }) else {
                throw FormatError(path: path + WorkLayout.stateSuffix, "has no momentum tensor")
            }
            optimizer.restore(step: step, buffer: try momentum.floatValues())
            (firstEpoch, firstBatch) = batch >= schedule.batchesPerEpoch ? (epoch + 1, 0) : (epoch, batch)
            log(batch >= schedule.batchesPerEpoch ? "resuming after epoch \(epoch) (step \(step)) from \(path)"
                : "resuming in epoch \(epoch) at batch \(batch) (step \(step)) from \(path)")
        }
        var checkpoints: [String] = [], firstLoss = Double.nan, lastLoss = Double.nan, waitSeconds = 0.0
        let lastEpoch = min(options.epochs - 1, firstEpoch + (options.stopAfterEpochs ?? options.epochs) - 1,
                            options.lastEpochToTrain ?? Int.max)
        guard firstEpoch <= lastEpoch else { return Summary(steps: 0, lastLoss: .nan, firstLoss: .nan, checkpoints: [], communicationWaitSeconds: 0, seconds: 0) }
        let gradients = model.store.gradients
        let exchange = try GradientExchange(communicator: communicator, gradients: gradients, settings: options.exchange)
        defer { exchange.close() }
        // TensorBoard scalars, as the reference logs them (rank 0 only).
        let events = communicator.isRoot && options.logEvery < 1_000_000 ? try TensorBoardWriter(folder: options.layout.tensorBoardLogs(options.checkpointPrefix)) : nil
        defer { events?.flush() }
        var stepsRun = 0
        var stepNanoseconds: UInt64 = 0
        let runStart = DispatchTime.now().uptimeNanoseconds
        for epoch in firstEpoch...lastEpoch {
            let startBatch = epoch == firstEpoch ? firstBatch : 0
            let loader = model.loader(schedule: schedule, epoch: epoch, firstBatch: startBatch, rank: communicator.rank, size: communicator.size)
            var batchIndex = startBatch
            var stepStart = DispatchTime.now().uptimeNanoseconds
            while optimizer.step < maxStep, let batch = try PhaseProfiler.measure(.dataWait, { try loader.next() }) {
                let step = optimizer.step
                let context = DropoutContext(random: CounterRandom(seed: options.seed ^ 0x44524F50), step: step,
                                             firstSampleIndex: model.firstSampleIndex(batch))
                // The exchange sums the tail of the gradient buffer while backward works on earlier blocks.
                exchange.beginStep()
                let values = try model.trainStep(batch, dropout: context, communicator: communicator) { ready in
                    exchange.gradientsReady(from: ready.lowerBound)
                }
                waitSeconds += try PhaseProfiler.measure(.exchangeWait) { try exchange.finishStep() }
                // A diverged run must stop loudly: NaN weights would otherwise train on silently
                // (ReLU maps NaN to 0, so the loss would look like a calm ln 2).
                if !PhaseProfiler.measure(.gradientCheck, { allFinite(gradients) }) {
                    throw DataError("gradients became NaN or infinite at step \(optimizer.step + 1) (loss \(values[0])): training diverged; lower --lr or check the data")
                }
                // The stop flag rides on the loss reduction, so every rank sees the same decision.
                var reported = values + [Double(stopRequested)]
                try communicator.allreduceSum(&reported)
                let stopNow = reported.removeLast() > 0
                PhaseProfiler.measure(.optimizer) { optimizer.apply(to: model.store) }
                stepsRun += 1
                batchIndex += 1
                if firstLoss.isNaN { firstLoss = reported[0] }
                lastLoss = reported[0]
                if communicator.isRoot && (optimizer.step % options.logEvery == 0 || optimizer.step == maxStep || stepsRun == 1) {
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - runStart) / 1e9
                    let rate = Double(stepsRun * options.globalBatch) / seconds
                    let eta = Double(maxStep - optimizer.step) * seconds / Double(stepsRun)
                    let entries = model.report(reported, globalBatch: options.globalBatch)
                    log(String(format: "step %d/%d epoch %d: ", optimizer.step, maxStep, epoch) + model.consoleSummary(entries)
                        + String(format: " lr %.5g, %.2f images/s, ETA %.0f s", optimizer.learningRate, rate, eta))
                    let fields = entries.map { String(format: "\"%@\":%.*f", $0.key, $0.decimals, $0.value) }.joined(separator: ",")
                    let line = String(format: "{\"step\":%d,\"epoch\":%d,", optimizer.step, epoch) + fields
                        + String(format: ",\"lr\":%.8g,\"images_per_second\":%.4f}\n", optimizer.learningRate, rate)
                    try appendLine(line, to: options.layout.metricsLog)
                    events?.scalars(entries.compactMap { entry in entry.tensorBoardTag.map { ($0, entry.value) } }
                                    + [("Learning Rate", Double(optimizer.learningRate))], step: optimizer.step)
                }
                stepNanoseconds += DispatchTime.now().uptimeNanoseconds - stepStart
                stepStart = DispatchTime.now().uptimeNanoseconds
                if stopNow {
                    loader.stop()
                    let path = options.layout.partialCheckpoint(options.checkpointPrefix)
                    try saveCheckpoint(path, model: model, optimizer: optimizer, epoch: epoch, nextBatch: batchIndex,
                                       options: options, maxStep: maxStep, communicator: communicator, log: log)
                    throw Stopped(checkpoint: path + WorkLayout.weightsSuffix)
                }
            }
            loader.stop()
            if epoch % options.checkpointEvery == 0 || epoch == options.epochs - 1 || epoch == lastEpoch {
                let path = options.layout.checkpoint(options.checkpointPrefix, epoch: epoch)
                try saveCheckpoint(path, model: model, optimizer: optimizer, epoch: epoch, nextBatch: schedule.batchesPerEpoch,
                                   options: options, maxStep: maxStep, communicator: communicator, log: log)
                checkpoints.append(path)
            }
        }
        exchange.close()  // idempotent: completes the statistics before they are returned
        return Summary(steps: stepsRun, lastLoss: lastLoss, firstLoss: firstLoss, checkpoints: checkpoints,
                       communicationWaitSeconds: waitSeconds, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                       stepSeconds: Double(stepNanoseconds) / 1e9, exchange: communicator.size > 1 ? exchange.statistics : nil)
    }

    /// Weights, then the state (momentum, step, epoch, next batch): resume
    /// takes a checkpoint only when its state exists, so both are complete.
    static func saveCheckpoint<Model: TrainingModel>(_ path: String, model: Model, optimizer: PolySGD, epoch: Int, nextBatch: Int,
                               options: Options, maxStep: Int, communicator: Communicator, log: (String) -> Void) throws {
        if communicator.isRoot {
            let metadata = ["sccam.epoch": "\(epoch)", "sccam.step": "\(optimizer.step)", "sccam.next_batch": "\(nextBatch)",
                            "sccam.seed": "\(options.seed)", "sccam.max_step": "\(maxStep)"]
            try model.saveWeights(path + WorkLayout.weightsSuffix, metadata: metadata)
            try optimizer.buffer.withUnsafeBufferPointer { buffer in
                try Safetensors.write(floats: [("momentum", [buffer.count], buffer)], metadata: metadata,
                                      to: path + WorkLayout.stateSuffix)
            }
            log("checkpoint \(path).safetensors (step \(optimizer.step))")
        }
        try communicator.barrier()
    }

    /// The checkpoint with the most steps among those whose state file exists.
    static func latestCheckpoint(_ options: Options) -> String? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: options.layout.weights) else { return nil }
        var best: (step: Int, path: String)?
        for path in options.layout.checkpointStates(options.checkpointPrefix, names: names) {
            guard let state = try? Safetensors.read(path + WorkLayout.stateSuffix),
                  let step = Int(state.metadata["sccam.step"] ?? ""), step > (best?.step ?? -1) else { continue }
            best = (step, path)
        }
        return best?.path
    }

    static func allFinite(_ values: UnsafeMutableBufferPointer<Float>) -> Bool {
        guard let start = values.baseAddress else { return true }
        let base = UnsafeRawPointer(start)
        // Summing is a fast finiteness test: any NaN or infinity makes the sum non-finite
        // (a finite overflow to infinity would be just as fatal for training).
        let chunks = max(1, min(Parallel.threadCount * 4, values.count / 65_536))
        var finite = [Bool](repeating: true, count: chunks)
        finite.withUnsafeMutableBufferPointer { finite in
            let finite = UncheckedSendable(finite)
            Parallel.forEach(chunks) { chunk in
                let end = values.count * (chunk + 1) / chunks
                var i = values.count * chunk / chunks
                // Sixteen lanes at a time: one serial sum ran at a third of the memory's
                // speed and was 2% of a bf16 step.
                var lanes = SIMD16<Float>()
                while i + 16 <= end {
                    lanes += base.loadUnaligned(fromByteOffset: i * MemoryLayout<Float>.stride, as: SIMD16<Float>.self) * 0
                    i += 16
                }
                var sum = lanes.sum()
                while i < end {
                    sum += values[i] * 0
                    i += 1
                }
                finite.value[chunk] = sum == 0
            }
        }
        return !finite.contains(false)
    }

    static func appendLine(_ line: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw FormatError(path: path, "cannot append to the metrics log") }
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(Data(line.utf8))
    }
}
