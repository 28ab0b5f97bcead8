import Data
import Distributed
import Formats
import Foundation
import Network

/// The extract stage (spec 4): the classifier in eval mode on each image at
/// its native size (scale 1, not flipped), keeping the pooled feature. Each
/// rank takes a contiguous part of the list and checkpoints its finished
/// part atomically, so a killed run resumes where it stopped; rank 0
/// gathers everything in list order.
public enum FeatureExtraction {
    public struct Options: Sendable {
        public var round: Int
        public var work: String
        public var resume: Bool
        public var checkpointEvery: Int
        public var decodeThreads: Int
        public var skipUnreadable: Bool
        /// Test hook: exit after this many newly extracted images (after a checkpoint).
        public var stopAfter: Int?

        public init(round: Int, work: String, resume: Bool, checkpointEvery: Int = 100, decodeThreads: Int = 1,
                    skipUnreadable: Bool = false, stopAfter: Int? = nil) {
            self.round = round
            self.work = work
            self.resume = resume
            self.checkpointEvery = checkpointEvery
            self.decodeThreads = decodeThreads
            self.skipUnreadable = skipUnreadable
            self.stopAfter = stopAfter
        }
    }

    public struct Summary: Sendable {
        public let images: Int
        public let dimension: Int
        public let resumed: Int
        public let skipped: [String]
        public let seconds: Double
    }

    public static func run(network: SCCAMNetwork, dataset: VOCDataset, list: ImageList, labels: ImageLabels,
                           options: Options, communicator: Communicator, log: (String) -> Void,
                           warn: (String) -> Void) throws -> Summary {
        let start = DispatchTime.now().uptimeNanoseconds
        let dimension = network.configuration.featureChannels
        let mine = Sharding.contiguousRange(count: list.ids.count, rank: communicator.rank, size: communicator.size)
        let folder = "\(options.work)/features"
        let shardPath = "\(folder)/.R\(options.round)_rank\(communicator.rank)_of_\(communicator.size).part.npy"

        // A shard row: [done flag (1 extracted, -1 skipped), feature...].
        let width = 1 + dimension
        var rows = [Float](repeating: 0, count: mine.count * width)
        var done = 0
        if options.resume, let saved = try? NPY.read(shardPath), saved.shape == [mine.count, width] {
            rows = try saved.values(path: shardPath)
            while done < mine.count && rows[done * width] != 0 { done += 1 }
        }
        var resumed: [Int64] = [Int64(done)]
        try communicator.allreduceSum(&resumed)
        if resumed[0] > 0 { log("resuming: \(resumed[0]) image(s) already extracted") }

        let source = ImageSource(dataset: dataset, skipUnreadable: options.skipUnreadable)
        let ids = list.ids
        let todo = Array(mine.dropFirst(done))
        let loader = PrefetchingLoader<RGBImageBox>(count: todo.count, threads: options.decodeThreads, capacity: 2 * options.decodeThreads) { index in
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
            if finished % options.checkpointEvery == 0 || finished == mine.count {
                try NPY.write(rows, shape: [mine.count, width], to: shardPath)
            }
            if communicator.isRoot { progress.update(finished: finished, computedHere: extracted, log: log) }
            if let stop = options.stopAfter, extracted >= stop {
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
                keptLabels += labels.multiHot(id) ?? [Float](repeating: 0, count: VOCClasses.count)
            }
            kept = keptIDs.count
            try NPY.write(features, shape: [kept, dimension], to: "\(folder)/R\(options.round)_features.npy")
            try NPY.write(keptLabels, shape: [kept, VOCClasses.count], to: "\(folder)/R\(options.round)_labels.npy")
            try AtomicFile.write(keptIDs.joined(separator: "\n") + "\n", to: "\(folder)/R\(options.round)_images.txt")
            for id in skipped { warn("skipped unreadable image \(id)") }
        }
        try communicator.barrier()
        try? FileManager.default.removeItem(atPath: shardPath)
        return Summary(images: kept, dimension: dimension, resumed: Int(resumed[0]), skipped: skipped,
                       seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
