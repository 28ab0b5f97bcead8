import Data
import Distributed
import Formats
import Foundation
import Workflow
import Kernels
import Network
import TrainingLoop

/// This rank's part of one global AffinityNet batch.
public struct AffinityBatch: Sendable {
    public let samples: [Int]
    public let items: [Int]
    /// [count, 3, crop, crop]
    public let images: [Float]
    /// [count, 34, pairs] each.
    public let backgroundPositive: [Float]
    public let foregroundPositive: [Float]
    public let negative: [Float]
    public var count: Int { items.count }
}

/// AffinityNet's training (psa's `train_aff.py`, spec 9.3): images and their
/// CRF score stacks (`sccam affinity-labels`) through `AffinitySample`, psa's
/// loss with the three label counts summed over the whole global batch
/// (allreduced before the loss is normalised, so 2 ranks x 4 images weigh
/// pairs as 1 rank x 8 does), optionally in micro-batches whose gradients add up.
public final class AffinityTraining: TrainingModel {
    public let network: AffinityNetwork
    let ids: [String]
    let scores: String
    let source: ImageSource
    let augmentation: TrainingAugmentation
    let microBatch: Int?
    let decodeThreads: Int

    /// `scores`: the folder of `{id}.npy` stacks ([2, 1 + C, H, W]).
    public init(network: AffinityNetwork, dataset: any SegmentationDataset, ids: [String], scores: String, cropSize: Int,
                microBatch: Int?, skipUnreadable: Bool, decodeThreads: Int) {
        self.network = network
        self.ids = ids
        self.scores = scores
        self.microBatch = microBatch
        self.decodeThreads = decodeThreads
        source = ImageSource(dataset: dataset, skipUnreadable: skipUnreadable)
        augmentation = TrainingAugmentation(cropSize: cropSize)
    }

    /// The micro-batch a rank should use: `requested` if given, else none when
    /// its `share` of a batch fits in its part of this node's memory (60% of
    /// the physical memory over the node's ranks, less the parameters,
    /// gradients and momentum), else the largest part that fits. The note says why.
    public static func microBatch(requested: Int?, share: Int, network: AffinityNetwork, crop: Int, ranksOnThisNode: Int,
                                  physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) -> (size: Int?, note: String?) {
        if let requested {
            return (requested, requested < share ? "each rank runs its \(share) images per step in micro-batches of \(requested), accumulating gradients" : nil)
        }
        let one = network.trainingWorkspaceBytes(batch: 1, height: crop, width: crop)
        let perImage = max(1, network.trainingWorkspaceBytes(batch: 2, height: crop, width: crop) - one)
        let fixed = one - perImage
        let parameters = 4 * (network.store.parameterCount + 2 * network.store.trainableCount)
        let budget = Int(Double(physicalMemory) * 0.6) / max(1, ranksOnThisNode) - parameters
        if fixed + share * perImage <= budget { return (nil, nil) }
        let fits = max(1, (budget - fixed) / perImage)
        func gb(_ bytes: Int) -> String { String(format: "%.1f GB", Double(bytes) / 1e9) }
        return (fits, "a rank's \(share) images at \(crop) need \(gb(fixed + share * perImage)) of activations, more than its \(gb(budget)) of this node's memory: running micro-batches of \(fits), accumulating gradients (--micro-batch sets it)")
    }

    public var store: ParameterStore { network.store }
    public var headPrefixes: [String] { AffinityNetwork.headPrefixes }
    public func loadWeights(_ path: String) throws { try network.store.load(try WeightFiles.read(path).tensors, from: path) }
    public func saveWeights(_ path: String, metadata: [String: String]) throws { try network.saveSafetensors(path, metadata: metadata) }

    /// An image's score stack and its channel count (1 + C), checked against the image.
    static func readScores(folder: String, id: String, image: RGBImage) throws -> (values: [Float], channels: Int) {
        let path = ImageFolder(folder).npy(id)
        let array = try NPY.read(path)
        guard array.type == .float32, array.shape.count == 4, array.shape[0] == 2, array.shape[1] >= 1,
              array.shape[2] == image.height, array.shape[3] == image.width else {
            throw FormatError(path: path, """
                holds \(array.type.rawValue) \(array.shape), but its image is \(image.width)x\(image.height): expected float32 \
                [2, 1 + C, \(image.height), \(image.width)]; rerun sccam affinity-labels for this image
                """)
        }
        return (try array.values(path: path), array.shape[1])
    }

    public func loader(schedule: EpochSchedule, epoch: Int, firstBatch: Int, rank: Int, size: Int) -> PrefetchingLoader<AffinityBatch> {
        let order = schedule.permutation(epoch: epoch)
        let (ids, source, augmentation, scores) = (self.ids, self.source, self.augmentation, self.scores)
        return PrefetchingLoader(count: max(0, schedule.batchesPerEpoch - firstBatch), threads: decodeThreads,
                                 capacity: max(2, decodeThreads)) { index in
            let global = schedule.batch(firstBatch + index, epoch: epoch, order: order)
            let mine = Array(Sharding.batchSlice(Array(global.indices), rank: rank, size: size)).map { global[$0] }
            var images: [Float] = [], bg: [Float] = [], fg: [Float] = [], neg: [Float] = []
            var samples: [Int] = [], items: [Int] = []
            for (sample, item) in mine {
                guard let image = try source.image(ids[item]) else { continue }
                let stack = try Self.readScores(folder: scores, id: ids[item], image: image)
                var random = SampleRandom(seed: schedule.seed, epoch: epoch, sampleIndex: sample)
                let s = AffinitySample.make(image: image, scores: stack.values, channels: stack.channels, augmentation: augmentation,
                                            random: &random)
                images += s.image
                bg += s.backgroundPositive
                fg += s.foregroundPositive
                neg += s.negative
                samples.append(sample)
                items.append(item)
            }
            return AffinityBatch(samples: samples, items: items, images: images, backgroundPositive: bg, foregroundPositive: fg, negative: neg)
        }
    }

    public func firstSampleIndex(_ batch: AffinityBatch) -> Int { batch.samples.first ?? 0 }

    public func trainStep(_ batch: AffinityBatch, dropout: DropoutContext, communicator: Communicator,
                          gradientsReady: (Range<Int>) -> Void) throws -> [Double] {
        let crop = augmentation.cropSize, grid = crop / 8
        let pairs = PairGeometry(height: grid, width: grid).pairCount
        let labels = AffinityLoss.Labels(batch: batch.count, pairsPerImage: pairs, backgroundPositive: batch.backgroundPositive,
                                         foregroundPositive: batch.foregroundPositive, negative: batch.negative)
        // The counts of the whole global batch, before any loss is normalised.
        let local = labels.counts
        var global = local.asArray
        try communicator.allreduceSum(&global)
        let counts = AffinityLoss.Counts(background: global[0], foreground: global[1], negative: global[2])
        let chunk = max(1, min(microBatch ?? batch.count, batch.count))
        var total = [0.0, 0.0, 0.0, 0.0]
        let imageSize = 3 * crop * crop
        for first in stride(from: 0, to: batch.count, by: chunk) {
            let count = min(chunk, batch.count - first), isLast = first + count == batch.count
            let part = AffinityLoss.Labels(batch: count, pairsPerImage: pairs,
                                           backgroundPositive: Array(batch.backgroundPositive[(first * pairs)..<((first + count) * pairs)]),
                                           foregroundPositive: Array(batch.foregroundPositive[(first * pairs)..<((first + count) * pairs)]),
                                           negative: Array(batch.negative[(first * pairs)..<((first + count) * pairs)]))
            let context = DropoutContext(random: dropout.random, step: dropout.step, firstSampleIndex: batch.samples[first])
            batch.images.withUnsafeBufferPointer { images in
                _ = network.forward(input: images.baseAddress! + first * imageSize, batch: count, height: crop, width: crop,
                                    mode: .training(dropout: context, inputGradient: false))
            }
            let value = withoutActuallyEscaping(gradientsReady) { ready in
                // Only the last part's gradients are final: the buckets start then.
                network.backward(labels: part, counts: counts, accumulateGradients: first > 0, gradientsReady: isLast ? ready : nil)
            }
            total[0] += value.total
            total[1] += value.background
            total[2] += value.foreground
            total[3] += value.negative
        }
        return total + local.asArray
    }

    public func report(_ summed: [Double], globalBatch: Int) -> [TrainingReportEntry] {
        [TrainingReportEntry(key: "loss", value: summed[0], tensorBoardTag: "Total Loss"),
         TrainingReportEntry(key: "loss_bg", value: summed[1], tensorBoardTag: "Background Positive Loss"),
         TrainingReportEntry(key: "loss_fg", value: summed[2], tensorBoardTag: "Foreground Positive Loss"),
         TrainingReportEntry(key: "loss_neg", value: summed[3], tensorBoardTag: "Negative Loss"),
         TrainingReportEntry(key: "count_bg", value: summed[4], decimals: 0, tensorBoardTag: "Background Positive Pairs"),
         TrainingReportEntry(key: "count_fg", value: summed[5], decimals: 0, tensorBoardTag: "Foreground Positive Pairs"),
         TrainingReportEntry(key: "count_neg", value: summed[6], decimals: 0, tensorBoardTag: "Negative Pairs")]
    }

    public func consoleSummary(_ entries: [TrainingReportEntry]) -> String {
        let collapsed = AffinityLoss.hasCollapsed(background: entries[1].value, foreground: entries[2].value,
                                                  negative: entries[3].value)
        return String(format: "loss %.4f (bg %.4f, fg %.4f, neg %.4f; pairs %.0f / %.0f / %.0f)", entries[0].value, entries[1].value,
               entries[2].value, entries[3].value, entries[4].value, entries[5].value, entries[6].value)
            + (collapsed ? "; warning: the affinities have collapsed to all 0 or all 1 (diverged); lower --lr or --momentum" : "")
    }
}
