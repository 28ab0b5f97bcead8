import Data
import Distributed
import Formats
import Foundation
import Workflow
import Kernels
import Network
import TrainingLoop

/// This rank's part of one DeepLab iteration: images, their labels, and the
/// global indices that say which sub-batch each belongs to.
public struct SegmentationBatch: Sendable {
    public let samples: [Int]
    /// [count, 3, crop, crop] mean-subtracted BGR.
    public let images: [Float]
    /// [count, crop, crop], 255 = ignored.
    public let labels: [Int32]
    public var count: Int { samples.count }
}

/// DeepLab-v2's training (deeplab-v2.md 4): an iteration is `subBatches`
/// sub-batches of `subBatchSize` images (the reference: 2 x 5), each with the
/// MSC loss normalised by its own labelled-pixel counts (allreduced when a
/// sub-batch is split over ranks) and halved for the accumulation; stepped
/// poly learning rate, ASPP weights 10x and biases 20x without decay.
public final class SegmentationTraining: TrainingModel {
    public let network: DeepLabV2
    let ids: [String]
    let labelFolder: String
    let source: ImageSource
    let augmentation: SegmentationAugmentation
    let subBatchSize: Int
    let microBatch: Int?
    let decodeThreads: Int
    /// 1 as the reference. From scratch, 1/4096: the stem starts at 1/64 of
    /// He's scale for the 0-255 inputs, and its gradients carry their ~60x
    /// magnitude; at the backbone's lr its weights explode within 3 steps
    /// (1/4096 is training the stem as if its weights were stored x64).
    public var stemLearningRateMultiplier: Float = 1

    public init(network: DeepLabV2, dataset: any SegmentationDataset, ids: [String], labels: String, augmentation: SegmentationAugmentation,
                subBatchSize: Int, microBatch: Int?, skipUnreadable: Bool, decodeThreads: Int) {
        self.network = network
        self.ids = ids
        labelFolder = labels
        self.augmentation = augmentation
        self.subBatchSize = subBatchSize
        self.microBatch = microBatch
        self.decodeThreads = decodeThreads
        source = ImageSource(dataset: dataset, skipUnreadable: skipUnreadable)
    }

    public var store: ParameterStore { network.store }
    public var headPrefixes: [String] { [] }
    public var learningRateStepSize: Int { 10 }
    public func learningRateGroup(_ entry: ParameterStore.Entry) -> PolySGD.Group? {
        if network.asppBiasNames.contains(entry.name) { return (20, false) }
        if network.asppWeightNames.contains(entry.name) { return (10, true) }
        if entry.name.hasPrefix("base.layer1.") { return (stemLearningRateMultiplier, true) }
        return (1, true)
    }

    public func loadWeights(_ path: String) throws { try network.loadWeights(path) }
    public func saveWeights(_ path: String, metadata: [String: String]) throws { try network.saveSafetensors(path, metadata: metadata) }

    /// An image's labels from `folder/{id}.png` (class ids, grey or palette), checked.
    public static func readLabels(folder: String, id: String, image: RGBImage, classes: Int) throws -> [UInt8] {
        let path = ImageFolder(folder).png(id)
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError("\(path): no label map for \(id); --labels must hold a class-id PNG per training image (sccam refine writes them)")
        }
        let mask = try PNG.readIndexed(path)
        guard mask.width == image.width, mask.height == image.height else {
            throw DataError("\(path): labels are \(mask.width)x\(mask.height) but the image is \(image.width)x\(image.height)")
        }
        if let bad = mask.indices.first(where: { Int($0) >= classes && $0 != 255 }) {
            throw DataError("\(path): holds label \(bad), outside 0..\(classes - 1) and 255; it is not a class-id map")
        }
        return mask.indices
    }

    public func loader(schedule: EpochSchedule, epoch: Int, firstBatch: Int, rank: Int, size: Int) -> PrefetchingLoader<SegmentationBatch> {
        let order = schedule.permutation(epoch: epoch)
        let (ids, source, augmentation, folder, classes) = (self.ids, self.source, self.augmentation, labelFolder, network.configuration.classes)
        return PrefetchingLoader(count: max(0, schedule.batchesPerEpoch - firstBatch), threads: decodeThreads,
                                 capacity: max(2, decodeThreads)) { index in
            let global = schedule.batch(firstBatch + index, epoch: epoch, order: order)
            let mine = Array(Sharding.batchSlice(Array(global.indices), rank: rank, size: size)).map { (global[$0], $0) }
            var images: [Float] = [], labels: [Int32] = [], samples: [Int] = []
            for ((sample, item), position) in mine {
                guard let image = try source.image(ids[item]) else { continue }
                let map = try Self.readLabels(folder: folder, id: ids[item], image: image, classes: classes)
                var random = SampleRandom(seed: schedule.seed, epoch: epoch, sampleIndex: sample)
                let s = augmentation.apply(image: image, labels: map, random: &random)
                images += s.image
                labels += s.labels
                samples.append(position)
            }
            return SegmentationBatch(samples: samples, images: images, labels: labels)
        }
    }

    public func firstSampleIndex(_ batch: SegmentationBatch) -> Int { batch.samples.first ?? 0 }

    public func trainStep(_ batch: SegmentationBatch, dropout: DropoutContext, communicator: Communicator,
                          gradientsReady: (Range<Int>) -> Void) throws -> [Double] {
        let crop = augmentation.cropSize, plane = crop * crop, outputs = network.outputNames.count
        let globalBatch = communicator.size * max(1, batch.count)
        let subBatches = max(1, (globalBatch + subBatchSize - 1) / subBatchSize)
        // This rank's images by sub-batch (a position in the global batch / the sub-batch size).
        var parts: [Int: [Int]] = [:]
        for (index, position) in batch.samples.enumerated() { parts[position / subBatchSize, default: []].append(index) }
        // The labelled-pixel counts of every sub-batch and output, summed over the ranks first.
        var counts = [Double](repeating: 0, count: subBatches * outputs)
        for (part, members) in parts {
            for member in members {
                let local = batch.labels.withUnsafeBufferPointer {
                    network.labelledCounts(labels: $0.baseAddress! + member * plane, batch: 1, height: crop, width: crop)
                }
                for (o, count) in local.enumerated() { counts[part * outputs + o] += Double(count) }
            }
        }
        try communicator.allreduceSum(&counts)
        var terms = [Double](repeating: 0, count: outputs)
        var first = true
        let weight = 1 / Float(subBatches)
        let lastPart = parts.keys.max()
        for part in parts.keys.sorted() {
            let members = parts[part]!
            let chunk = max(1, min(microBatch ?? members.count, members.count))
            for start in stride(from: 0, to: members.count, by: chunk) {
                // Gathered: a skipped unreadable image may leave a gap in the rank's slice.
                let range = members[start..<min(members.count, start + chunk)]
                let images = range.flatMap { batch.images[($0 * 3 * plane)..<(($0 + 1) * 3 * plane)] }
                let labels = range.flatMap { batch.labels[($0 * plane)..<(($0 + 1) * plane)] }
                let divisors = Array(counts[(part * outputs)..<((part + 1) * outputs)])
                // The last part's last branch finishes each tail of the gradients: its allreduce can start.
                let isLast = part == lastPart && start + chunk >= members.count
                let loss = withoutActuallyEscaping(gradientsReady) { ready in
                    network.trainingStep(input: images, labels: labels, batch: range.count, height: crop, width: crop,
                                         weight: weight, accumulate: !first, normalizers: { _ in divisors },
                                         gradientsReady: isLast ? { ready($0..<self.store.trainableCount) } : nil)
                }
                first = false
                for (o, term) in loss.terms.enumerated() { terms[o] += term * Double(weight) }
            }
        }
        if first {
            // This rank held no image (all skipped as unreadable): it adds zeros.
            store.zeroGradients()
            gradientsReady(0..<store.trainableCount)
        }
        return [terms.reduce(0, +)] + terms
    }

    public func report(_ summed: [Double], globalBatch: Int) -> [TrainingReportEntry] {
        [TrainingReportEntry(key: "loss", value: summed[0], tensorBoardTag: "loss/train")]
            + network.outputNames.enumerated().map { index, name in
                TrainingReportEntry(key: "loss_\(name)", value: summed[index + 1], tensorBoardTag: "loss/\(name)")
            }
    }

    public func consoleSummary(_ entries: [TrainingReportEntry]) -> String {
        String(format: "loss %.4f (", entries[0].value)
            + entries.dropFirst().map { String(format: "%@ %.4f", String($0.key.dropFirst(5)), $0.value) }.joined(separator: ", ") + ")"
    }
}
