import Data
import Distributed
import Formats
import Foundation

/// The loop every per-image stage runs (`infer`, `refine`, `segment`): each
/// rank takes a contiguous part of the list, skips images whose outputs all
/// exist (a killed run resumes), reads the image and what else the stage
/// needs (`read`: unreadable inputs stop the run, or with `skipUnreadable`
/// are counted and skipped), and computes and writes the outputs
/// (`process`, whose errors always stop the run); rank 0 prints
/// progress with an ETA. The totals are summed over the ranks.
public enum ImageStage {
    public struct Summary: Sendable {
        public let computed: Int
        public let alreadyDone: Int
        public let failures: [String]
        public let seconds: Double

        public init(computed: Int, alreadyDone: Int, failures: [String], seconds: Double) {
            (self.computed, self.alreadyDone, self.failures, self.seconds) = (computed, alreadyDone, failures, seconds)
        }
    }

    public static func run<Inputs>(dataset: any SegmentationDataset, list: ImageList, skipUnreadable: Bool, communicator: Communicator,
                                   log: (String) -> Void, isDone: (String) -> Bool,
                                   read: (_ id: String, _ image: RGBImage) throws -> Inputs,
                                   process: (_ id: String, _ image: RGBImage, _ inputs: Inputs) throws -> Void) throws -> Summary {
        let start = DispatchTime.now().uptimeNanoseconds
        let mine = Sharding.contiguousRange(count: list.ids.count, rank: communicator.rank, size: communicator.size)
        var computed = 0, done = 0
        var failures: [String] = []
        var progress = ProgressLine(total: mine.count)
        for (position, index) in mine.enumerated() {
            let id = list.ids[index]
            if isDone(id) {
                done += 1
                continue
            }
            let image: RGBImage, inputs: Inputs
            do {
                image = try JPEG.read(dataset.imagePath(id))
                inputs = try read(id, image)
            } catch {
                guard skipUnreadable else { throw error }
                failures.append("\(id): \(error)")
                continue
            }
            try process(id, image, inputs)
            computed += 1
            if communicator.isRoot { progress.update(finished: position + 1, computedHere: computed, log: log) }
        }
        var counts: [Int64] = [Int64(computed), Int64(done)]
        try communicator.allreduceSum(&counts)
        let allFailures = try communicator.allgather(lines: failures)
        return Summary(computed: Int(counts[0]), alreadyDone: Int(counts[1]), failures: allFailures,
                       seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
