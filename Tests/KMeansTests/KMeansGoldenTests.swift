import Distributed
import Formats
import Foundation
import KMeans
import XCTest

/// The reference library's k-means results on 800 pooled features (Golden/,
/// copied from shared/golden/kmeans).
final class KMeansGoldenTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path

    struct Expected: Decodable {
        let inertia_per_class: [Double]
        let stable_classes: [Int]
    }

    /// Adjusted Rand index of two partitions of the same points.
    static func adjustedRandIndex(_ a: [Int], _ b: [Int]) -> Double {
        func choose2(_ n: Int) -> Double { Double(n * (n - 1)) / 2 }
        var table: [Int: [Int: Int]] = [:]
        for (x, y) in zip(a, b) { table[x, default: [:]][y, default: 0] += 1 }
        let index = table.values.flatMap(\.values).reduce(0) { $0 + choose2($1) }
        let rows = table.values.map { $0.values.reduce(0, +) }.reduce(0) { $0 + choose2($1) }
        var columnCounts: [Int: Int] = [:]
        for (_, y) in zip(a, b) { columnCounts[y, default: 0] += 1 }
        let columns = columnCounts.values.reduce(0) { $0 + choose2($1) }
        let expected = rows * columns / choose2(a.count)
        let maximum = (rows + columns) / 2
        return maximum == expected ? 1 : (index - expected) / (maximum - expected)
    }

    /// Seeds 0...4: on every seed the README's inertia bounds hold (mean ratio
    /// to the reference <= 1.005, each class <= 1.06), and on the stable classes
    /// an optimum of the same inertia (within 0.1%) is the same partition
    /// (ARI >= 0.95). The issue also asks for ARI >= 0.95 on every stable class
    /// outright; that does not hold, for two reasons, both open in issue 6:
    /// - on class 9 seeds 1-4 find a partition with 0.45% lower inertia than the
    ///   reference's "stable" one (ARI 0.91): scikit-learn 1.9.1 itself reaches
    ///   that lower optimum (1306.97) in 29 of 200 single runs, while its
    ///   10-restart seed-0 run, the golden, stops at 1312.84;
    /// - seed 0 on class 5 (4.8% higher) and seed 4 on class 16 (0.5% higher)
    ///   end in a worse local optimum in all ten restarts. A single run finds
    ///   class 5's optimum 57 times in 200 here and 53 in 200 with scikit-learn,
    ///   so ten restarts miss it about 3.5% of the time in both.
    func testInertiaAndPartitionsMatchTheReferenceLibrary() throws {
        let features: [Float] = try NPY.read("\(Self.directory)/features.npy").values()
        let labels = try NPY.read("\(Self.directory)/labels20.npy").floatValues()
        let assign = try NPY.read("\(Self.directory)/sklearn_assign.npy")
        let reference = assign.payload.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: "\(Self.directory)/expected.json")))
        let dimension = 48, images = 800
        var partitionMisses: [String] = []
        for seed in UInt64(0)...4 {
            var ratios: [Double] = []
            for c in 0..<20 {
                let members = (0..<images).filter { labels[$0 * 20 + c] == 1 }
                let points = members.flatMap { features[($0 * dimension)..<(($0 + 1) * dimension)] }
                let result = try KMeans.fit(points: points, count: members.count, dimension: dimension, firstIndex: 0,
                                            options: KMeans.Options(clusters: 10, seed: seed), communicator: SingleProcessCommunicator())
                XCTAssertEqual(result.sizes.reduce(0, +), members.count)
                let ratio = result.inertia / expected.inertia_per_class[c]
                ratios.append(ratio)
                XCTAssertLessThanOrEqual(ratio, 1.06, "seed \(seed) class \(c): inertia \(result.inertia) against \(expected.inertia_per_class[c])")
                if expected.stable_classes.contains(c) {
                    let theirs = members.map { Int(reference[$0 * 20 + c]) }
                    let ari = Self.adjustedRandIndex(result.labels.map(Int.init), theirs)
                    if ari < 0.95 && abs(ratio - 1) <= 0.001 { partitionMisses.append("seed \(seed) class \(c): ARI \(ari), inertia ratio \(ratio)") }
                }
            }
            let mean = ratios.reduce(0, +) / Double(ratios.count)
            if ProcessInfo.processInfo.environment["SCCAM_PRINT_GOLDEN_ERRORS"] != nil {
                print("k-means seed \(seed) inertia ratios:", ratios.map { String(format: "%.4f", $0) }.joined(separator: " "), "mean", mean)
            }
            XCTAssertLessThanOrEqual(mean, 1.005, "seed \(seed): mean inertia ratio \(mean)")
        }
        if ProcessInfo.processInfo.environment["SCCAM_PRINT_GOLDEN_ERRORS"] != nil { print("partition misses:", partitionMisses) }
        XCTAssertEqual(partitionMisses, [], "an optimum of the reference's inertia must be its partition")
    }

    func testBadInputIsRefused() {
        XCTAssertThrowsError(try KMeans.fit(points: [1, 2, 3], count: 3, dimension: 1, firstIndex: 0,
                                            options: KMeans.Options(clusters: 4), communicator: SingleProcessCommunicator())) {
            XCTAssertTrue("\($0)".contains("cannot form 4 clusters"), "\($0)")
        }
        XCTAssertThrowsError(try KMeans.fit(points: [1, .nan, 3, 4], count: 4, dimension: 1, firstIndex: 0,
                                            options: KMeans.Options(clusters: 2), communicator: SingleProcessCommunicator())) {
            XCTAssertTrue("\($0)".contains("NaN"), "\($0)")
        }
    }

    func testAnEmptyClusterIsRefilled() throws {
        // Two far groups and three clusters: whatever the seeding, no cluster may end empty.
        var points: [Float] = []
        for i in 0..<30 { points += [Float(i % 3) * 0.01, 0] }
        for i in 0..<30 { points += [100 + Float(i % 3) * 0.01, 0] }
        let result = try KMeans.fit(points: points, count: 60, dimension: 2, firstIndex: 0,
                                    options: KMeans.Options(clusters: 3, restarts: 3, seed: 4), communicator: SingleProcessCommunicator())
        XCTAssertTrue(result.sizes.allSatisfy { $0 > 0 }, "\(result.sizes)")
        XCTAssertEqual(result.sizes.reduce(0, +), 60)
    }
}
