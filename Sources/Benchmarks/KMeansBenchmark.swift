import Distributed
import Formats
import Foundation
import Kernels
import Stages
import Workflow

/// The cluster stage at full scale on synthetic data: 10,582 images with
/// 4096-d non-negative features, the 20 classes at the frequencies of VOC's
/// train_aug (16,458 image-class pairs), 10 true sub-types per class.
public enum KMeansBenchmark {
    /// Images per class in train_aug (spec 5).
    public static let classSizes = [590, 504, 705, 468, 714, 393, 1150, 1005, 1228, 267, 613, 1188, 445, 492, 4155, 522, 300, 649, 503, 567]

    /// Writes the synthetic features, ids and labels to `folder` (rank 0) where
    /// `cluster --round 1 --work folder` reads them (features/R0_*), and returns them.
    public static func prepare(in folder: String, images: Int = 10_582, dimension: Int = 4096, communicator: Communicator) throws -> SubcategoryClustering.Inputs {
        let files = WorkLayout(folder).features(round: 0)
        let inputs = SubcategoryClustering.Inputs(features: files.features, images: files.images, labels: files.labels)
        if communicator.isRoot {
            let random = CounterRandom(seed: 42)
            var labels = [Float](repeating: 0, count: images * 20)
            for (c, size) in classSizes.enumerated() {
                var order = Array(0..<images)
                for i in stride(from: images - 1, to: 0, by: -1) {
                    order.swapAt(i, Int(random.uniform(1, UInt64(c), UInt64(i), 0) * Double(i + 1)))
                }
                for i in order.prefix(size) { labels[i * 20 + c] = 1 }
            }
            for i in 0..<images where !(0..<20).contains(where: { labels[i * 20 + $0] == 1 }) { labels[i * 20 + 14] = 1 }
            // Each (class, sub-type) has a sparse non-negative prototype; an image
            // sums the prototypes of its classes' sub-types, plus noise.
            let active = dimension / 8
            var features = [Float](repeating: 0, count: images * dimension)
            features.withUnsafeMutableBufferPointer { out in
                Parallel.forEach(images) { i in
                    let row = out.baseAddress! + i * dimension
                    for j in 0..<dimension { row[j] = Float(random.uniform(2, UInt64(i), UInt64(j), 0)) * 0.2 }
                    for c in 0..<20 where labels[i * 20 + c] == 1 {
                        let subtype = UInt64(random.uniform(3, UInt64(i), UInt64(c), 0) * 10)
                        for a in 0..<active {
                            let j = Int(random.uniform(4, UInt64(c), subtype, UInt64(a)) * Double(dimension))
                            row[j] += 1 + Float(random.uniform(5, UInt64(c), subtype, UInt64(a)))
                        }
                    }
                }
            }
            try NPY.write(features, shape: [images, dimension], to: inputs.features)
            try NPY.write(labels, shape: [images, 20], to: inputs.labels)
            try AtomicFile.write((0..<images).map { String(format: "2012_%06d", $0) }.joined(separator: "\n") + "\n", to: inputs.images)
        }
        try communicator.barrier()
        return inputs
    }
}

extension KMeansBenchmark {
    /// The cluster stage on the synthetic inputs in `folder`, its labels written to `folder/work-{ranks}/labels`.
    public static func run(folder: String, restarts: Int, strategy: SubcategoryClustering.Strategy,
                           communicator: Communicator) throws -> SubcategoryClustering.Report {
        var settings = ClusterStage.Settings(round: 1)
        (settings.restarts, settings.strategy) = (restarts, strategy)
        settings.inputs = try prepare(in: folder, communicator: communicator)
        settings.output = WorkLayout(folder).benchmarkRun(ranks: communicator.size).labels
        return try ClusterStage.run(settings, in: StageContext(communicator: communicator, layout: WorkLayout(folder), log: { _ in }, warn: { _ in }))
    }
}
