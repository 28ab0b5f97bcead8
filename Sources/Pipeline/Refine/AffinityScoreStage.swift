import Data
import DenseCRF
import Distributed
import Formats
import Foundation

/// `sccam affinity-labels`: for every image of a list, the two CRF score
/// stacks of spec 9.2 from its saved CAMs, at the image's full resolution,
/// because AffinityNet's training crops image and scores together and only
/// then mean-pools the scores 8 x 8. Each rank takes a contiguous part of the
/// list and writes, per image and atomically:
/// - `affinity/{id}.npy`: float32 [2, 1 + C, H, W], the low-alpha (`la`) then
///   the high-alpha (`ha`) stack, each [background, the C present classes];
/// - `affinity/{id}.classes.npy`: int32 [C], those classes (0-19).
/// About 4 x 2 x (1 + C) x H x W bytes an image: 3.8 MB for a 500 x 375 VOC
/// image with 1.5 classes, ~35 GB for train_aug's 10,582.
/// Images whose files exist are skipped, so a killed run resumes.
public enum AffinityScoreStage {
    public struct Options: Sendable {
        public var cams: String
        public var work: String
        public var lowAlpha: Float
        public var highAlpha: Float
        public var parameters: CRFParameters
        public var iterations: Int
        public var skipUnreadable: Bool

        public init(cams: String, work: String, lowAlpha: Float = 4, highAlpha: Float = 32, parameters: CRFParameters = .psa,
                    iterations: Int = 10, skipUnreadable: Bool = false) {
            self.cams = cams
            self.work = work
            self.lowAlpha = lowAlpha
            self.highAlpha = highAlpha
            self.parameters = parameters
            self.iterations = iterations
            self.skipUnreadable = skipUnreadable
        }
    }

    public struct Summary: Sendable {
        public let computed: Int
        public let alreadyDone: Int
        public let failures: [String]
        public let bytesWritten: Int
        public let seconds: Double
    }

    public static func scoresPath(work: String, id: String) -> String { "\(work)/affinity/\(id).npy" }
    public static func classesPath(work: String, id: String) -> String { "\(work)/affinity/\(id).classes.npy" }

    /// The two stacks of one image: [2][1 + C][H][W].
    public static func scores(image: RGBImage, cams: CRFScores.CAMs, options: Options, workspace: CRFWorkspace? = nil) -> [Float] {
        let crf = CRFScores.makeCRF(image: image, parameters: options.parameters)
        let labels = 1 + cams.classes.count
        return [options.lowAlpha, options.highAlpha].flatMap { alpha in
            CRFScores.infer(crf, stack: CRFScores.backgroundStack(cams, alpha: alpha), labels: labels, iterations: options.iterations,
                            workspace: workspace)
        }
    }

    public static func run(dataset: VOCDataset, list: ImageList, options: Options, communicator: Communicator,
                           log: (String) -> Void) throws -> Summary {
        let start = DispatchTime.now().uptimeNanoseconds
        let mine = Sharding.contiguousRange(count: list.ids.count, rank: communicator.rank, size: communicator.size)
        var computed = 0, done = 0, bytes = 0
        var failures: [String] = []
        var progress = ProgressLine(total: mine.count)
        let workspace = CRFWorkspace()
        for (position, index) in mine.enumerated() {
            let id = list.ids[index]
            let scoresPath = scoresPath(work: options.work, id: id), classesPath = classesPath(work: options.work, id: id)
            if FileManager.default.fileExists(atPath: scoresPath) && FileManager.default.fileExists(atPath: classesPath) {
                done += 1
                continue
            }
            let image: RGBImage, cams: CRFScores.CAMs
            do {
                image = try JPEG.read(dataset.imagePath(id))
                cams = try CRFScores.readCAMs(folder: options.cams, id: id, width: image.width, height: image.height)
            } catch {
                guard options.skipUnreadable else { throw error }
                failures.append("\(error)")
                continue
            }
            let stacks = scores(image: image, cams: cams, options: options, workspace: workspace)
            try NPY.write(cams.classes.map { Int32($0) }, shape: [cams.classes.count], to: classesPath)
            // The scores last: their presence marks the image done.
            try NPY.write(stacks, shape: [2, 1 + cams.classes.count, image.height, image.width], to: scoresPath)
            bytes += stacks.count * 4
            computed += 1
            if communicator.isRoot { progress.update(finished: position + 1, computedHere: computed, log: log) }
        }
        var counts: [Int64] = [Int64(computed), Int64(done), Int64(bytes)]
        try communicator.allreduceSum(&counts)
        let allFailures = try communicator.allgather(lines: failures)
        return Summary(computed: Int(counts[0]), alreadyDone: Int(counts[1]), failures: allFailures, bytesWritten: Int(counts[2]),
                       seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
