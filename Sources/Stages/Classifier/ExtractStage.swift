import Data
import Distributed
import Formats
import Foundation
import Network
import Workflow

/// `extract` (spec 4): the classifier in eval mode on each image at its
/// native size (scale 1, not flipped), keeping the pooled feature. Each rank
/// takes a contiguous part of the list and checkpoints its finished part
/// atomically, so a killed run resumes where it stopped; rank 0 gathers
/// everything in list order into WORK/features/R{round}_*.
public enum ExtractStage: Stage {
    public static let name = "extract"

    public struct Settings: Codable, Sendable, Equatable {
        /// The classifier: safetensors, PyTorch .pth or MXNet .params (recognised by content).
        public var weights: String
        /// The round of that classifier (0 = the baseline): the features are R{round}'s.
        public var round = 0
        public var list = "train_aug"
        /// Continue a killed extraction, keeping the images each rank had finished.
        public var resume = false
        /// Accept weights without classification heads (extraction uses only the backbone).
        public var allowMissingHeads = false
        /// Test hook: exit with code 9 after this many newly extracted images (after a checkpoint).
        public var stopAfter: Int?

        public init(weights: String, round: Int = 0) {
            self.weights = weights
            self.round = round
        }
    }

    public struct Result: Codable, Sendable, CustomStringConvertible {
        public let images: Int
        public let dimension: Int
        public let resumed: Int
        public let skipped: [String]
        public let seconds: Double
        /// The feature matrix written.
        public let features: String

        public var description: String {
            String(format: "wrote %d features of %d values to %@ in %.1f s%@", images, dimension, features, seconds,
                   skipped.isEmpty ? "" : "; skipped \(skipped.count) unreadable image(s)")
        }
    }

    public static func run(_ settings: Settings, in context: StageContext) throws -> Result {
        try requireSetting(settings.round >= 0 && context.runtime.checkpointImages >= 1 && context.runtime.decodeThreads >= 1,
                           "--round must be 0 or more; --checkpoint-every and --decode-threads at least 1")
        let network = try SCCAMNetwork.fromWeights(settings.weights, allowMissingHeads: settings.allowMissingHeads, compute: context.compute,
                                                   note: context.warn)
        let dataset = try context.requireDataset(for: name)
        let list = try dataset.list(settings.list)
        try dataset.validate(list)
        let labels = try dataset.imageLabels(ids: list.ids, cache: context.isRoot ? context.layout.imageLabelCache : nil,
                                             warn: context.warn)
        let configuration = network.configuration
        context.log("extract: \(list.ids.count) images of \(list.source) with \(settings.weights) (width 1/\(configuration.widthDivisor), \(configuration.featureChannels)-d features) on \(context.communicator.size) rank(s)")
        return try extract(network: network, dataset: dataset, list: list, labels: labels, settings: settings, context: context)
    }

    static func extract(network: SCCAMNetwork, dataset: any SegmentationDataset, list: ImageList, labels: ImageLabels, settings: Settings,
                        context: StageContext) throws -> Result {
        let communicator = context.communicator, log = context.log
        let start = DispatchTime.now().uptimeNanoseconds
        let dimension = network.configuration.featureChannels
        let mine = Sharding.contiguousRange(count: list.ids.count, rank: communicator.rank, size: communicator.size)
        let files = context.layout.features(round: settings.round)
        let shardPath = context.layout.featureShard(round: settings.round, rank: communicator.rank, size: communicator.size)

        // A shard row: [done flag (1 extracted, -1 skipped), feature...].
        let width = 1 + dimension
        var rows = [Float](repeating: 0, count: mine.count * width)
        var done = 0
        if settings.resume, let saved = try? NPY.read(shardPath), saved.shape == [mine.count, width] {
            rows = try saved.values(path: shardPath)
            while done < mine.count && rows[done * width] != 0 { done += 1 }
        }
        var resumed: [Int64] = [Int64(done)]
        try communicator.allreduceSum(&resumed)
        if resumed[0] > 0 { log("resuming: \(resumed[0]) image(s) already extracted") }

        let source = ImageSource(dataset: dataset, skipUnreadable: context.runtime.skipUnreadable)
        let ids = list.ids
        let todo = Array(mine.dropFirst(done))
        let loader = PrefetchingLoader<RGBImageBox>(count: todo.count, threads: context.runtime.decodeThreads, capacity: 2 * context.runtime.decodeThreads) { index in
            RGBImageBox(image: try source.image(ids[todo[index]]))
        }
        var extracted = 0
        var progress = ProgressLine(total: mine.count)
        while let box = try loader.next() {
            let row = done + extracted
            if let image = box.image {
                let input = InferenceViews.extraction(image)
                let output = input.withUnsafeBufferPointer {
                    network.forward(input: $0.baseAddress!, batch: 1, height: image.height, width: image.width)
                }
                rows[row * width] = 1
                for j in 0..<dimension { rows[row * width + 1 + j] = output.features[j] }
            } else {
                rows[row * width] = -1
            }
            extracted += 1
            let finished = done + extracted
            if finished % context.runtime.checkpointImages == 0 || finished == mine.count {
                try NPY.write(rows, shape: [mine.count, width], to: shardPath)
            }
            if communicator.isRoot { progress.update(finished: finished, computedHere: extracted, log: log) }
            if let stop = settings.stopAfter, extracted >= stop {
                try NPY.write(rows, shape: [mine.count, width], to: shardPath)
                loader.stop()
                exit(9)
            }
        }
        // Rank 0 gathers the shards in rank order: that is list order.
        let gathered = try communicator.gather(rows, root: 0)
        var skipped: [String] = []
        var kept = 0
        if let gathered {
            let all = gathered.flatMap { $0 }
            var features: [Float] = [], keptIDs: [String] = [], keptLabels: [Float] = []
            for (index, id) in ids.enumerated() {
                let flag = all[index * width]
                if flag < 0 { skipped.append(id); continue }
                features += all[(index * width + 1)..<((index + 1) * width)]
                keptIDs.append(id)
                keptLabels += labels.multiHot(id) ?? [Float](repeating: 0, count: labels.classNames.count)
            }
            kept = keptIDs.count
            try NPY.write(features, shape: [kept, dimension], to: files.features)
            try NPY.write(keptLabels, shape: [kept, labels.classNames.count], to: files.labels)
            try AtomicFile.write(keptIDs.joined(separator: "\n") + "\n", to: files.images)
            for id in skipped { context.warn("skipped unreadable image \(id)") }
        }
        try communicator.barrier()
        try? FileManager.default.removeItem(atPath: shardPath)
        return Result(images: kept, dimension: dimension, resumed: Int(resumed[0]), skipped: skipped,
                      seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, features: files.features)
    }
}
