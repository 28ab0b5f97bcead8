import Data
import Formats
import Foundation
import Kernels
import Network
import Stages
import Workflow

/// How fast images are decoded and augmented, and whether one decode thread
/// keeps a real training step fed.
public enum DataFeedBenchmark {
    public struct Report: Codable, Sendable {
        public let imageWidth: Int
        public let imageHeight: Int
        public let cropSize: Int
        /// Decode + augment on one thread, no loader.
        public let imagesPerSecondOneThread: Double
        public let decodeThreads: Int
        /// Through the prefetching loader with `decodeThreads` threads.
        public let imagesPerSecondLoader: Double
        public let trainSteps: Int
        public let trainBatch: Int
        public let widthDivisor: Int
        public let stepSeconds: [Double]
        /// Per step after the first, seconds the step waited for its batch.
        public let waitSeconds: [Double]
    }

    public static func run(decodeThreads: Int, distinctImages: Int, samples: Int, cropSize: Int,
                           trainSteps: Int, trainBatch: Int, widthDivisor: Int, compute: Compute,
                           progress: (String) -> Void) throws -> Report {
        let width = 500, height = 375
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sccam-bench-data-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var ids: [String] = []
        for i in 0..<distinctImages {
            let id = String(format: "2012_%06d", i)
            try JPEG.write(PhotoLikeImage.make(width: width, height: height, seed: UInt64(i)),
                           to: "\(folder)/JPEGImages/\(id).jpg", quality: 90)
            ids.append(id)
        }
        let source = ImageSource(dataset: try VOCDataset(root: folder), skipUnreadable: false)
        let augmentation = TrainingAugmentation(cropSize: cropSize)

        var start = DispatchTime.now().uptimeNanoseconds
        for sample in 0..<samples {
            var random = SampleRandom(seed: 1, epoch: 0, sampleIndex: sample)
            _ = augmentation.apply(to: try source.image(ids[sample % ids.count])!, random: &random)
        }
        let oneThread = Double(samples) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        progress(String(format: "decode + augment %dx%d JPEG -> %d crop: %.1f images/s on one thread", width, height, cropSize, cropSize, oneThread))

        let schedule = EpochSchedule(count: samples, batchSize: 1, seed: 1)
        start = DispatchTime.now().uptimeNanoseconds
        let loader = TrainingBatches.loader(ids: (0..<samples).map { ids[$0 % ids.count] }, source: source,
                                            augmentation: augmentation, schedule: schedule, epoch: 0, rank: 0, size: 1,
                                            decodeThreads: decodeThreads, prefetch: 2 * decodeThreads)
        while try loader.next() != nil {}
        let throughLoader = Double(samples) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        progress(String(format: "through the loader with %d decode thread(s): %.1f images/s", decodeThreads, throughLoader))

        var stepSeconds: [Double] = [], waits: [Double] = []
        if trainSteps > 0 {
            let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: widthDivisor, round: 1), compute: compute)
            network.initializeBackbone(seed: 1)
            // One decode thread, the images cycled if the steps need more.
            let stepFeed = TrainingBatches.loader(ids: (0..<(trainBatch * trainSteps)).map { ids[$0 % ids.count] }, source: source,
                                                  augmentation: augmentation,
                                                  schedule: EpochSchedule(count: trainBatch * trainSteps, batchSize: trainBatch, seed: 2),
                                                  epoch: 0, rank: 0, size: 1, decodeThreads: 1)
            var targets20 = [Float](repeating: 0, count: trainBatch * 20), targets200 = [Float](repeating: 0, count: trainBatch * 200)
            for n in 0..<trainBatch { targets20[n * 20 + n % 20] = 1; targets200[n * 200 + (n % 20) * 10] = 1 }
            var waitedBefore = 0.0
            for step in 0..<trainSteps {
                guard let batch = try stepFeed.next() else { break }
                let waited = stepFeed.waitingSeconds - waitedBefore
                waitedBefore = stepFeed.waitingSeconds
                let stepStart = DispatchTime.now().uptimeNanoseconds
                batch.images.withUnsafeBufferPointer { input in
                    let context = DropoutContext(random: CounterRandom(seed: 3), step: step, firstSampleIndex: 0)
                    network.forward(input: input.baseAddress!, batch: batch.count, height: cropSize, width: cropSize,
                                    mode: .training(dropout: context, inputGradient: false))
                    network.backward(targets: [targets20, targets200])
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - stepStart) / 1e9
                stepSeconds.append(seconds)
                if step > 0 { waits.append(waited) }
                progress(String(format: "train step %d (width 1/%d, batch %d): %.2f s, waited %.3f s for data%@",
                                step, widthDivisor, trainBatch, seconds, waited, step == 0 ? " (first batch: loader start-up)" : ""))
            }
        }
        return Report(imageWidth: width, imageHeight: height, cropSize: cropSize, imagesPerSecondOneThread: oneThread,
                      decodeThreads: decodeThreads, imagesPerSecondLoader: throughLoader, trainSteps: trainSteps,
                      trainBatch: trainBatch, widthDivisor: widthDivisor, stepSeconds: stepSeconds, waitSeconds: waits)
    }
}
