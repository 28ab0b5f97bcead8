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

    /// scikit-learn's inertias for seeds 1...4 (make_seed_inertias.py).
    struct OtherSeeds: Decodable {
        let inertia_per_seed: [String: [Double]]
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

    /// Seed 0 is the reference's own `random_state=0`: with NumPy's draws
    /// consumed as scikit-learn consumes them, every stable class must come
    /// out as the reference's partition (ARI >= 0.95), and all inertias must
    /// sit within the README's bounds. Seeds 1...4 are other runs of the same
    /// method: the reference itself with those seeds lands on other local
    /// optima (class 9's lower 1306.97 partition, for one), so for them only
    /// the inertia bounds apply, and each must reach the inertia the
    /// reference reaches with the same seed (within 0.01%): the same draws
    /// lead to the same local optimum.
    func testInertiaAndPartitionsMatchTheReferenceLibrary() throws {
        let features: [Float] = try NPY.read("\(Self.directory)/features.npy").values()
        let labels = try NPY.read("\(Self.directory)/labels20.npy").floatValues()
        let assign = try NPY.read("\(Self.directory)/sklearn_assign.npy")
        let reference = assign.payload.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: "\(Self.directory)/expected.json")))
        let otherSeeds = try JSONDecoder().decode(OtherSeeds.self, from: Data(contentsOf: URL(fileURLWithPath: "\(Self.directory)/sklearn_inertia_seeds.json")))
        let dimension = 48, images = 800
        var partitionMisses: [String] = []
        var seedMisses: [String] = []
        var missesPerSeed: [UInt64: Int] = [:]
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
                if let theirs = otherSeeds.inertia_per_seed["\(seed)"]?[c], abs(result.inertia / theirs - 1) > 1e-4 {
                    seedMisses.append("seed \(seed) class \(c): \(result.inertia) against \(theirs)")
                    missesPerSeed[seed, default: 0] += 1
                }
                if seed == 0 && expected.stable_classes.contains(c) {
                    let theirs = members.map { Int(reference[$0 * 20 + c]) }
                    let ari = Self.adjustedRandIndex(result.labels.map(Int.init), theirs)
                    if ari < 0.95 { partitionMisses.append("class \(c): ARI \(ari), inertia ratio \(ratio)") }
                }
            }
            let mean = ratios.reduce(0, +) / Double(ratios.count)
            if ProcessInfo.processInfo.environment["SCCAM_PRINT_GOLDEN_ERRORS"] != nil {
                print("k-means seed \(seed) inertia ratios:", ratios.map { String(format: "%.4f", $0) }.joined(separator: " "), "mean", mean)
            }
            XCTAssertLessThanOrEqual(mean, 1.005, "seed \(seed): mean inertia ratio \(mean)")
        }
        XCTAssertEqual(partitionMisses, [], "seed 0 must give the reference's partition on every stable class")
        // The distances are float32 sgemm products, as in scikit-learn, so a near-tie
        // between k-means++ candidates can fall the other way with another BLAS kernel:
        // with OpenBLAS's SkylakeX sgemm seed 2 class 18 settles at 16.174 instead of
        // the reference's 16.045 (Haswell's kernel reaches it). One such class per seed
        // is allowed; a second means the draws themselves no longer follow the reference's.
        XCTAssertLessThanOrEqual(missesPerSeed.values.max() ?? 0, 1,
                                 "a seed must reach the reference's optimum for that seed: \(seedMisses)")
        XCTAssertLessThanOrEqual(seedMisses.count, 2, "\(seedMisses)")
    }

    /// NumPy's `RandomState` outputs, recorded from NumPy 2.4.
    func testRandomStateMatchesNumPy() {
        var zero = NumPyRandomState(seed: 0)
        XCTAssertEqual(zero.randomSample(), 0.5488135039273248)
        XCTAssertEqual(zero.randomSample(), 0.7151893663724195)
        XCTAssertEqual(zero.randomSample(), 0.6027633760716439)
        for _ in 3..<999 { _ = zero.randomSample() }
        XCTAssertEqual(zero.randomSample(), 0.6771411441114241, "the 1000th draw crosses a state regeneration")
        var raw = NumPyRandomState(seed: 0)
        XCTAssertEqual([raw.nextUInt32(), raw.nextUInt32(), raw.nextUInt32()], [2_357_136_044, 2_546_248_239, 3_071_714_933])
        // choice(37, p=ones(37, float32) / 37) then uniform(size=4).
        var other = NumPyRandomState(seed: 12345)
        XCTAssertEqual(other.uniformChoice(count: 37), 34)
        let uniforms = (0..<4).map { _ in other.randomSample() }
        for (value, expected) in zip(uniforms, [0.31637555, 0.18391881, 0.20456028, 0.56772503]) {
            XCTAssertEqual(value, expected, accuracy: 5e-9)
        }
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
        XCTAssertThrowsError(try KMeans.fit(points: [1, 2, 3, 4], count: 4, dimension: 1, firstIndex: 0,
                                            options: KMeans.Options(clusters: 2, seed: 1 << 32), communicator: SingleProcessCommunicator())) {
            XCTAssertTrue("\($0)".contains("out of range"), "\($0)")
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
