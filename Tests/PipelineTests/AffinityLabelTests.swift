import Formats
import Foundation
import Pipeline
import XCTest

/// psa's label map and pair labels, against `Golden/affinity_labels/`.
final class AffinityLabelTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/affinity_labels").path

    private func load(_ name: String) throws -> NPYArray { try NPY.read("\(Self.directory)/\(name).npy") }

    func testLabelMapAndPairLabelsEqualTheGoldenExactly() throws {
        let low: [Float] = try load("la").values(), high: [Float] = try load("ha").values()
        XCTAssertEqual(try load("la").shape, [3, 14, 18])
        let labels = AffinityLabels.labelMap(low: low, high: high, channels: 3, height: 14, width: 18)
        XCTAssertEqual(labels, try load("label").values(as: UInt8.self))

        let pairs = AffinityLabels.pairs(labels: labels, height: 14, width: 18)
        XCTAssertEqual(pairs.from.map(Int64.init), try load("ind_from").values(as: Int64.self))
        XCTAssertEqual(pairs.to.flatMap { $0 }.map(Int64.init), try load("ind_to").values(as: Int64.self))
        XCTAssertEqual(try load("ind_to").shape, [34, 100])
        XCTAssertEqual(pairs.backgroundPositive.flatMap { $0 }, try load("bg_pos").values(as: Float.self))
        XCTAssertEqual(pairs.foregroundPositive.flatMap { $0 }, try load("fg_pos").values(as: Float.self))
        XCTAssertEqual(pairs.negative.flatMap { $0 }, try load("neg").values(as: Float.self))
        // Every class of pair occurs, so a swapped rule shows.
        for part in [pairs.backgroundPositive, pairs.foregroundPositive, pairs.negative] {
            XCTAssertGreaterThan(part.flatMap { $0 }.reduce(0, +), 0)
        }
    }

    func testDisplacementsAreThe34OfRadius5InPsasOrder() {
        let list = AffinityLabels.displacements
        XCTAssertEqual(list.count, 34)
        XCTAssertEqual(list.prefix(5).map { [$0.dy, $0.dx] }, [[0, 1], [0, 2], [0, 3], [0, 4], [1, -4]])
        XCTAssertEqual(list.suffix(5).map { [$0.dy, $0.dx] }, [[4, -2], [4, -1], [4, 0], [4, 1], [4, 2]])
    }
}
