import Foundation

/// This rank's part of one global training batch, augmented and stacked.
public struct TrainingBatch: Sendable {
    /// Global sample numbers within the epoch (they key the augmentation and dropout).
    public let samples: [Int]
    /// Positions in the image list.
    public let items: [Int]
    /// [count, 3, cropSize, cropSize]
    public let images: [Float]
    /// Items skipped as unreadable (only with skipping on).
    public let skipped: [Int]
    public var count: Int { items.count }
}

/// Feeds training: each epoch's global batches, this rank's slice of each,
/// decoded and augmented on background threads ahead of the train step.
public enum TrainingBatches {
    public static func loader(ids: [String], source: ImageSource, augmentation: TrainingAugmentation,
                              schedule: EpochSchedule, epoch: Int, firstBatch: Int = 0, rank: Int, size: Int,
                              decodeThreads: Int, prefetch: Int = 2) -> PrefetchingLoader<TrainingBatch> {
        let order = schedule.permutation(epoch: epoch)
        let batches = schedule.batchesPerEpoch - firstBatch
        return PrefetchingLoader(count: max(0, batches), threads: decodeThreads, capacity: max(prefetch, decodeThreads)) { index in
            let global = schedule.batch(firstBatch + index, epoch: epoch, order: order)
            let mine = Array(Sharding.batchSlice(Array(global.indices), rank: rank, size: size)).map { global[$0] }
            let plane = 3 * augmentation.cropSize * augmentation.cropSize
            var images: [Float] = []
            images.reserveCapacity(mine.count * plane)
            var samples: [Int] = [], items: [Int] = [], skipped: [Int] = []
            for (sample, item) in mine {
                guard let image = try source.image(ids[item]) else {
                    skipped.append(item)
                    continue
                }
                var random = SampleRandom(seed: schedule.seed, epoch: epoch, sampleIndex: sample)
                images += augmentation.apply(to: image, random: &random)
                samples.append(sample)
                items.append(item)
            }
            return TrainingBatch(samples: samples, items: items, images: images, skipped: skipped)
        }
    }
}
