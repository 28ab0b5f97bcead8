import Data
import Distributed
import Formats
import Foundation
import Network
import Stages

/// The checks and comparisons of a pipeline's settings: what `run.json` holds.
extension SCCAMPipeline.Settings {
    public func validate() throws {
        guard rounds >= 1, k >= 1, kmeansRestarts >= 1, batch >= 1, baselineEpochs >= 1, epochs >= 1, checkpointEvery >= 1 else {
            throw DataError("--rounds, --k, --n-init, --batch, the epochs and --checkpoint-every must be at least 1")
        }
        guard longSide.count == 2, longSide[0] >= 1, longSide[0] <= longSide[1] else {
            throw DataError("the long-side range must be two sizes, smallest first (got \(longSide))")
        }
        guard usedEpochs.count >= rounds else {
            throw DataError("--used-epochs names \(usedEpochs.count) epoch(s) for \(rounds) round(s); give one per round")
        }
        for (index, epoch) in usedEpochs.prefix(rounds).enumerated() where epoch < 0 || epoch >= epochs {
            throw DataError("round \(index + 1) uses the checkpoint of epoch \(epoch), outside 0 ..< \(epochs) (--epochs \(epochs))")
        }
        if let refine {
            guard refine.camsRound.map({ (0...rounds).contains($0) }) ?? true else {
                throw DataError("--refine-cams-round must be a round of this run, 0 to \(rounds)")
            }
            guard refine.epochs >= 1, refine.batch >= 1, refine.crop >= 8, refine.crop % 8 == 0 else {
                throw DataError("AffinityNet needs at least 1 epoch and image, and a crop that is a multiple of 8")
            }
        }
        if let segmentation {
            guard refine != nil else { throw DataError("the segmentation network trains on the pseudo-labels: drop --no-refine, or add --no-segmentation") }
            guard segmentation.iterations >= 1, segmentation.batch >= 1, segmentation.iterSize >= 1, segmentation.crop >= 16 else {
                throw DataError("the segmentation network needs at least 1 iteration, a batch and iteration size of at least 1 and a crop of at least 16")
            }
            guard segmentation.crf.map({ SegmentStage.CRFImage(rawValue: $0) != nil }) ?? true else {
                throw DataError("--seg-crf takes reference or raw")
            }
        }
    }

    /// The settings that differ from `other`, as "name: ours vs theirs".
    func differences(from other: SCCAMPipeline.Settings) -> [String] {
        guard let ours = try? JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as? [String: Any],
              let theirs = try? JSONSerialization.jsonObject(with: JSONEncoder().encode(other)) as? [String: Any] else { return ["?"] }
        // Nested settings print as sorted JSON: a dictionary's own description
        // orders its keys differently in every process.
        func text(_ value: Any?) -> String {
            guard let value else { return "none" }
            guard JSONSerialization.isValidJSONObject(value),
                  let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) else { return "\(value)" }
            return String(decoding: data, as: UTF8.self)
        }
        return Set(ours.keys).union(theirs.keys).sorted().compactMap { key in
            let a = text(ours[key]), b = text(theirs[key])
            return a == b ? nil : "\(key): \(a) here, \(b) in run.json"
        }
    }
}
