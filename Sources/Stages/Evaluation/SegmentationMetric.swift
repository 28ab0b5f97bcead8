import Data
import Distributed
import Formats
import Foundation
import Workflow

/// The reference's segmentation metric (spec 6.5): one confusion matrix
/// over all pixels of all images (rows = ground truth; values of `classes` and
/// above, 255 among them, ignored), per-class IoU, and the mean over the
/// classes present in the ground truth. VOC: 21 classes; COCO: 81.
public struct ConfusionMatrix: Sendable, Equatable {
    /// The background and the object classes.
    public let classes: Int
    /// counts[gt * classes + prediction]
    public var counts: [Int64]

    public init(classes: Int = 21) {
        self.classes = classes
        counts = [Int64](repeating: 0, count: classes * classes)
    }

    /// Adds one image; `source` names the prediction for error messages.
    public mutating func add(groundTruth: [UInt8], prediction: [UInt8], source: String) throws {
        guard groundTruth.count == prediction.count else {
            throw FormatError(path: source, "prediction has \(prediction.count) pixels, its ground truth \(groundTruth.count)")
        }
        for (g, p) in zip(groundTruth, prediction) where g < classes {
            guard p < classes else { throw FormatError(path: source, "holds class value \(p); predictions must be 0...\(classes - 1)") }
            counts[Int(g) * classes + Int(p)] += 1
        }
    }

    public mutating func reduce(over communicator: Communicator) throws { try communicator.allreduceSum(&counts) }

    public func row(_ c: Int) -> Int64 { (0..<classes).reduce(0) { $0 + counts[c * classes + $1] } }
    public func column(_ c: Int) -> Int64 { (0..<classes).reduce(0) { $0 + counts[$1 * classes + c] } }

    /// TP / (TP + FP + FN), nil where that is 0/0.
    public var classIoU: [Double?] {
        (0..<classes).map { c in
            let tp = counts[c * classes + c]
            let denominator = row(c) + column(c) - tp
            return denominator == 0 ? nil : Double(tp) / Double(denominator)
        }
    }

    public var presentInGroundTruth: [Bool] { (0..<classes).map { row($0) > 0 } }

    /// The reported mIoU: the mean IoU over classes present in the ground truth.
    public var meanIoU: Double? {
        let values = zip(classIoU, presentInGroundTruth).compactMap { $1 ? $0 : nil }
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }

    public var pixelAccuracy: Double? {
        let total = counts.reduce(0, +)
        return total == 0 ? nil : Double((0..<classes).reduce(Int64(0)) { $0 + counts[$1 * classes + $1] }) / Double(total)
    }

    /// The table people read: one line per class, then the mean.
    public func table(names objects: [String] = VOCClasses.names) -> String {
        let names = ["background"] + objects + (objects.count + 1..<max(classes, objects.count + 1)).map { "class \($0)" }
        var lines: [String] = []
        for (c, iou) in classIoU.enumerated() {
            let value = iou.map { String(format: "%.3f", $0) } ?? "  -  "
            let name = names[c].padding(toLength: 12, withPad: " ", startingAt: 0)
            lines.append(String(format: "class %2d ", c) + "\(name) IoU \(value)" + (presentInGroundTruth[c] ? "" : "  (not in ground truth)"))
        }
        lines.append(String(format: "mIoU %.4f over %d classes present in the ground truth, pixel accuracy %.4f",
                            meanIoU ?? .nan, presentInGroundTruth.filter { $0 }.count, pixelAccuracy ?? .nan))
        return lines.joined(separator: "\n")
    }

    public struct JSONReport: Codable {
        public let miou: Double?
        public let class_iou: [Double?]
        public let pixel_accuracy: Double?
        public let confusion: [[Int64]]
        public let class_present_in_ground_truth: [Bool]
    }

    public var jsonReport: JSONReport {
        JSONReport(miou: meanIoU, class_iou: classIoU, pixel_accuracy: pixelAccuracy,
                   confusion: (0..<classes).map { Array(counts[($0 * classes)..<(($0 + 1) * classes)]) },
                   class_present_in_ground_truth: presentInGroundTruth)
    }
}

/// Predictions against ground truth, split across ranks (`EvaluateStage`).
public enum Evaluation {
    /// Scores every `{id}.png` of `predictions` that has a ground-truth file (or
    /// the ids of `list`, each of which must have both).
    public static func run(predictions: String, groundTruth: String, list: String?, classes: Int = 21,
                           communicator: Communicator) throws -> (ConfusionMatrix, images: Int) {
        let ids = try imageIDs(list: list, folder: predictions, suffix: ".png", groundTruth: groundTruth)
        var matrix = ConfusionMatrix(classes: classes)
        for index in Sharding.contiguousRange(count: ids.count, rank: communicator.rank, size: communicator.size) {
            let id = ids[index]
            let truthPath = ImageFolder(groundTruth).png(id), predictionPath = ImageFolder(predictions).png(id)
            let truth = try PNG.readIndexed(truthPath)
            let prediction = try PNG.readIndexed(predictionPath)
            guard truth.width == prediction.width && truth.height == prediction.height else {
                throw FormatError(path: predictionPath, "is \(prediction.width)x\(prediction.height) but \(truthPath) is \(truth.width)x\(truth.height)")
            }
            try matrix.add(groundTruth: truth.indices, prediction: prediction.indices, source: predictionPath)
        }
        try matrix.reduce(over: communicator)
        return (matrix, ids.count)
    }
}

extension Evaluation {
    /// The ids of `list`, or else of every `{id}{suffix}` in `folder` that has a ground-truth file, sorted.
    static func imageIDs(list: String?, folder: String, suffix: String, groundTruth: String) throws -> [String] {
        if let list { return try ImageList(reading: list).ids }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw FormatError(path: folder, "cannot list this folder")
        }
        return names.filter { $0.hasSuffix(suffix) }.map { String($0.dropLast(suffix.count)) }
            .filter { FileManager.default.fileExists(atPath: ImageFolder(groundTruth).png($0)) }.sorted()
    }

    /// The thresholds a sweep tries unless told otherwise: 0.05, 0.10, ... 0.60.
    public static let sweepThresholds: [Float] = stride(from: 0.05, through: 0.6001, by: 0.05).map { Float($0) }

    /// The threshold with the highest mIoU in a sweep (the first of equals),
    /// and that mIoU; a threshold whose mIoU is undefined counts as -1.
    public static func best(thresholds: [Float], matrices: [ConfusionMatrix]) -> (threshold: Float, meanIoU: Double) {
        var best = (threshold: Float.nan, meanIoU: -1.0)
        for (threshold, matrix) in zip(thresholds, matrices) where (matrix.meanIoU ?? -1) > best.meanIoU {
            best = (threshold, matrix.meanIoU ?? -1)
        }
        return best
    }

    /// The background-threshold sweep: masks made from the saved CAMs
    /// (`cams/{id}.npy` + `.classes.npy`) at each threshold, scored against
    /// the ground truth. Returns one matrix per threshold.
    public static func sweep(cams: String, groundTruth: String, thresholds: [Float], list: String?, classes: Int = 21,
                             communicator: Communicator) throws -> [ConfusionMatrix] {
        let ids = try imageIDs(list: list, folder: cams, suffix: ".classes.npy", groundTruth: groundTruth)
        var matrices = [ConfusionMatrix](repeating: ConfusionMatrix(classes: classes), count: thresholds.count)
        for index in Sharding.contiguousRange(count: ids.count, rank: communicator.rank, size: communicator.size) {
            let id = ids[index]
            let truth = try PNG.readIndexed(ImageFolder(groundTruth).png(id))
            let maps = try NPY.read(ImageFolder(cams).npy(id))
            let classes: [Int32] = try NPY.read(ImageFolder(cams).classes(id)).values()
            guard maps.shape == [classes.count, truth.height, truth.width] else {
                throw FormatError(path: ImageFolder(cams).npy(id), "has shape \(maps.shape); its ground truth is \(truth.height)x\(truth.width) with \(classes.count) classes")
            }
            let values: [Float] = try maps.values()
            for (t, threshold) in thresholds.enumerated() {
                let mask = CAMInference.mask(maps: values, classes: classes.map(Int.init), plane: truth.width * truth.height, threshold: threshold)
                try matrices[t].add(groundTruth: truth.indices, prediction: mask, source: ImageFolder(cams).npy(id))
            }
        }
        for t in matrices.indices { try matrices[t].reduce(over: communicator) }
        return matrices
    }
}
