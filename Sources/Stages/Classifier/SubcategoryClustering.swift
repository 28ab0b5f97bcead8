import Distributed
import Formats
import Foundation
import KMeans
import Workflow

/// The clustering of `cluster` (spec 5): per parent class, k-means over the
/// features of the images that have it; each image gets one sub-category bit
/// in the block of every class it has.
public enum SubcategoryClustering {
    public enum Strategy: String, Codable, Sendable, CaseIterable {
        /// Every class's points split across all ranks.
        case points
        /// Whole classes spread over ranks, largest first.
        case classes
    }

    public struct Inputs: Codable, Sendable, Equatable {
        public var features: String
        public var images: String
        /// [N, 20] multi-hot, any numeric type.
        public var labels: String
        public init(features: String, images: String, labels: String) {
            self.features = features
            self.images = images
            self.labels = labels
        }
    }

    public struct ClassReport: Codable, Sendable {
        public let images: Int
        public let clusters: Int
        public let sizes: [Int]
        public let inertia: Double?
        public let iterations: Int
    }

    public struct Report: Codable, Sendable {
        public let k: Int
        public let restarts: Int
        public let seed: UInt64
        public let strategy: String
        public let images: Int
        public let inertia: [Double?]
        public let classes: [ClassReport]
        public let seconds: Double
    }


    /// Runs the stage; rank 0 writes `R{round}_subcategories.tsv`, `.npy` and
    /// `R{round}_report.json` into `output`.
    public static func run(inputs: Inputs, round: Int, k: Int, restarts: Int, seed: UInt64, strategy: Strategy,
                           output: WorkLayout.SubcategoryFiles, communicator: Communicator, log: (String) -> Void,
                           warn: (String) -> Void) throws -> Report {
        let start = DispatchTime.now().uptimeNanoseconds
        let featureArray = try NPY.read(inputs.features)
        guard featureArray.shape.count == 2, featureArray.type == .float32 else {
            throw FormatError(path: inputs.features, "must be a float32 [N, D] array, not \(featureArray.type.rawValue) \(featureArray.shape)")
        }
        let (n, dimension) = (featureArray.shape[0], featureArray.shape[1])
        let ids = try readIDs(inputs.images)
        guard ids.count == n else {
            throw FormatError(path: inputs.images, "lists \(ids.count) images but \(inputs.features) has \(n) feature rows; they must come from the same extraction")
        }
        let labelArray = try NPY.read(inputs.labels)
        // The parent classes are the labels' columns: 20 for VOC, 80 for COCO.
        guard labelArray.shape.count == 2, labelArray.shape[0] == n, labelArray.shape[1] >= 1 else {
            throw FormatError(path: inputs.labels, "must be [\(n), classes] (one multi-hot row per image), not \(labelArray.shape)")
        }
        let classes = labelArray.shape[1]
        let labels = labelArray.floatValues()
        guard labels.allSatisfy({ $0 == 0 || $0 == 1 }) else {
            throw FormatError(path: inputs.labels, "holds values other than 0 and 1")
        }
        let features: [Float] = try featureArray.values(path: inputs.features)
        if let bad = features.firstIndex(where: { !$0.isFinite }) {
            throw FormatError(path: inputs.features, "row \(bad / max(1, dimension)) holds a NaN or infinite value; re-run the extraction")
        }
        let members = (0..<classes).map { c in (0..<n).filter { labels[$0 * classes + c] == 1 } }
        let unlabelled = (0..<n).filter { i in (0..<classes).allSatisfy { labels[i * classes + $0] == 0 } }
        if !unlabelled.isEmpty { warn("\(unlabelled.count) image(s) have no class and get no sub-category label (e.g. \(ids[unlabelled[0]]))") }
        for c in 0..<classes where !members[c].isEmpty && members[c].count < k {
            warn("class \(c) has \(members[c].count) image(s), fewer than k = \(k): each gets its own sub-category (the reference would stop here)")
        }

        // assignments[c][m] = sub-category of members[c][m]
        var assignments = [[Int32]](repeating: [], count: classes)
        var reports = [ClassReport?](repeating: nil, count: classes)
        let options = { (clusters: Int) in KMeans.Options(clusters: clusters, restarts: restarts, seed: seed) }
        switch strategy {
        case .points:
            for c in 0..<classes {
                let count = members[c].count
                guard count > 0 else { continue }
                let clusters = min(k, count)
                let mine = (count * communicator.rank / communicator.size)..<(count * (communicator.rank + 1) / communicator.size)
                let points = mine.flatMap { features[(members[c][$0] * dimension)..<((members[c][$0] + 1) * dimension)] }
                let result = try KMeans.fit(points: points, count: mine.count, dimension: dimension, firstIndex: mine.lowerBound,
                                            options: options(clusters), communicator: communicator)
                assignments[c] = try communicator.allgather(result.labels).flatMap { $0 }
                reports[c] = ClassReport(images: count, clusters: clusters, sizes: result.sizes, inertia: result.inertia,
                                         iterations: result.iterations)
                log("class \(c): \(count) images, inertia \(String(format: "%.4g", result.inertia))")
            }
        case .classes:
            // Largest classes first, each to the least-loaded rank (by points).
            var load = [Int](repeating: 0, count: communicator.size)
            var owner = [Int](repeating: 0, count: classes)
            for c in (0..<classes).sorted(by: { members[$0].count > members[$1].count }) {
                let rank = load.indices.min { load[$0] < load[$1] }!
                owner[c] = rank
                load[rank] += members[c].count
            }
            struct ClassResult: Codable {
                let index: Int
                let report: ClassReport
                let labels: [Int32]
            }
            var local: [ClassResult] = []
            for c in 0..<classes where owner[c] == communicator.rank && !members[c].isEmpty {
                let count = members[c].count, clusters = min(k, count)
                let points = members[c].flatMap { features[($0 * dimension)..<(($0 + 1) * dimension)] }
                let result = try KMeans.fit(points: points, count: count, dimension: dimension, firstIndex: 0,
                                            options: options(clusters), communicator: SingleProcessCommunicator())
                local.append(ClassResult(index: c, report: ClassReport(images: count, clusters: clusters, sizes: result.sizes,
                                                                       inertia: result.inertia, iterations: result.iterations),
                                         labels: result.labels))
            }
            for part in try communicator.allgather(value: local) {
                for result in part {
                    assignments[result.index] = result.labels
                    reports[result.index] = result.report
                }
            }
        }

        // Merge (spec 5, steps 4-7): one bit per class the image has; order by
        // smallest class, then list position.
        var subcategories = [[Int]](repeating: [], count: n)
        for c in 0..<classes {
            for (m, image) in members[c].enumerated() { subcategories[image].append(c * k + Int(assignments[c][m])) }
        }
        let order = (0..<classes).flatMap { c in members[c].filter { image in (0..<c).allSatisfy { labels[image * classes + $0] == 0 } } }
        let report = Report(k: k, restarts: restarts, seed: seed, strategy: strategy.rawValue, images: order.count,
                            inertia: reports.map { $0?.inertia }, classes: reports.map { $0 ?? ClassReport(images: 0, clusters: 0, sizes: [], inertia: nil, iterations: 0) },
                            seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        if communicator.isRoot {
            var tsv = "# image id\tparent classes (0-\(classes - 1))\tsub-category ids (class * \(k) + cluster)\n"
            var multiHot = [Int32](repeating: 0, count: order.count * classes * k)
            for (row, image) in order.enumerated() {
                let parents = (0..<classes).filter { labels[image * classes + $0] == 1 }
                tsv += "\(ids[image])\t\(parents.map(String.init).joined(separator: ","))\t\(subcategories[image].map(String.init).joined(separator: ","))\n"
                for s in subcategories[image] { multiHot[row * classes * k + s] = 1 }
            }
            try AtomicFile.write(tsv, to: output.table)
            try NPY.write(multiHot, shape: [order.count, classes * k], to: output.multiHot)
            try AtomicFile.writeJSON(report, to: output.report)
        }
        try communicator.barrier()
        return report
    }

    static func readIDs(_ path: String) throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw FormatError(path: path, "cannot read the image list")
        }
        return text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }
}
