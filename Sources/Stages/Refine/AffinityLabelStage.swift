import Data
import DenseCRF
import Distributed
import Formats
import Foundation
import Workflow

/// `affinity-labels`: for every image of a list, the two CRF score
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
public enum AffinityLabelStage: Stage {
    public static let name = "affinity-labels"

    public struct Settings: Codable, Sendable, Equatable {
        /// The CAM stacks ({id}.npy and {id}.classes.npy) of any round.
        public var cams: String
        public var list = "train_aug"
        /// The background exponent of the stack that keeps confident foreground (psa: 4) ...
        public var lowAlpha: Float = 4
        /// ... and of the one that keeps confident background (psa: 32).
        public var highAlpha: Float = 32
        public var parameters = CRFParameters.psa
        public var iterations = 10

        public init(cams: String) { self.cams = cams }
    }

    public struct Result: Codable, Sendable, CustomStringConvertible {
        public let pass: ImagePassResult
        public let bytes: Int

        public var description: String {
            String(format: "computed %d image(s), %d already done, in %.1f s; wrote %.1f MB", pass.computed, pass.alreadyDone, pass.seconds,
                   Double(bytes) / 1e6)
                + (pass.failures.isEmpty ? "" : "\n\(pass.failures.count) image(s) were unreadable and skipped:\n  " + pass.failures.joined(separator: "\n  "))
        }
    }

    /// The two stacks of one image: [2][1 + C][H][W].
    public static func scores(image: RGBImage, cams: CRFScores.CAMs, options: Settings, workspace: CRFWorkspace? = nil) -> [Float] {
        let crf = CRFScores.makeCRF(image: image, parameters: options.parameters)
        let labels = 1 + cams.classes.count
        return [options.lowAlpha, options.highAlpha].flatMap { alpha in
            CRFScores.infer(crf, stack: CRFScores.backgroundStack(cams, alpha: alpha), labels: labels, iterations: options.iterations,
                            workspace: workspace)
        }
    }

    public static func run(_ options: Settings, in context: StageContext) throws -> Result {
        try requireSetting(options.lowAlpha > 0 && options.highAlpha > 0, "--low-alpha and --high-alpha must be positive")
        let dataset = try context.requireDataset(for: name)
        let list = try dataset.list(options.list)
        try dataset.validate(list)
        context.log("affinity-labels: \(list.ids.count) images of \(list.source), alpha \(options.lowAlpha) and \(options.highAlpha), CAMs from \(options.cams), on \(context.communicator.size) rank(s)")
        let communicator = context.communicator, log = context.log, folder = context.layout.affinityLabels
        let start = DispatchTime.now().uptimeNanoseconds
        let mine = Sharding.contiguousRange(count: list.ids.count, rank: communicator.rank, size: communicator.size)
        var computed = 0, done = 0, bytes = 0
        var failures: [String] = []
        var progress = ProgressLine(total: mine.count)
        let workspace = CRFWorkspace()
        for (position, index) in mine.enumerated() {
            let id = list.ids[index]
            let scoresPath = folder.npy(id), classesPath = folder.classes(id)
            if FileManager.default.fileExists(atPath: scoresPath) && FileManager.default.fileExists(atPath: classesPath) {
                done += 1
                continue
            }
            let image: RGBImage, cams: CRFScores.CAMs
            do {
                image = try JPEG.read(dataset.imagePath(id))
                cams = try CRFScores.readCAMs(folder: options.cams, id: id, width: image.width, height: image.height, classes: dataset.classCount)
            } catch {
                guard context.runtime.skipUnreadable else { throw error }
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
        let summary = ImageStage.Summary(computed: Int(counts[0]), alreadyDone: Int(counts[1]), failures: allFailures,
                                         seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        return Result(pass: ImagePassResult(summary), bytes: Int(counts[2]))
    }
}
