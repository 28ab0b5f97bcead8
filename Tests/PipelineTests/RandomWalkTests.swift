import Formats
import Foundation
import Network
import Pipeline
import XCTest

/// psa's random walk against `Golden/random_walk/` (spec 9.4; alpha 16, beta 8, logt 8).
final class RandomWalkTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/random_walk").path
    static let geometry = RandomWalk.Geometry(height: 100, width: 140)

    private func load(_ name: String) throws -> NPYArray { try NPY.read("\(Self.directory)/\(name).npy") }

    /// The pair affinities [34][pairs] that the golden dense matrix holds.
    private func affinities() throws -> [Float] {
        let dense: [Float] = try load("affinity_dense").values()
        let g = Self.geometry, n = g.cells
        XCTAssertEqual(try load("affinity_dense").shape, [n, n])
        let pairs = AffinityLabels.pairs(labels: [UInt8](repeating: 0, count: n), height: g.gridHeight, width: g.gridWidth)
        return pairs.to.enumerated().flatMap { d, targets in
            targets.enumerated().map { k, to in dense[pairs.from[k] * n + to] }
        }
    }

    private func maxRelative(_ a: [Double], _ b: [Float]) -> Double {
        let scale = b.map { abs(Double($0)) }.max()!
        return zip(a, b).map { abs($0 - Double($1)) }.max()! / scale
    }

    func testPooledScoresTransitionWalkAndLabelsEqualTheGolden() throws {
        let g = Self.geometry
        XCTAssertEqual([g.gridHeight, g.gridWidth, g.paddedHeight, g.paddedWidth], [13, 18, 104, 144])
        let cams: [Float] = try load("cams").values()
        let classes = try load("cams.classes").values(as: Int32.self).map(Int.init)
        let pooled = RandomWalk.pooledScores(cams: cams, classes: classes, geometry: g, alpha: 16)
        XCTAssertLessThan(maxRelative(pooled, try load("cam_pooled").values()), 1e-6)

        let transition = RandomWalk.transition(affinities: try affinities(), pairs: g.pairs(), beta: 8)
        var dense = [Double](repeating: 0, count: g.cells * g.cells)
        for j in 0..<g.cells {
            for e in transition.columnStart[j]..<transition.columnStart[j + 1] { dense[Int(transition.rows[e]) * g.cells + j] = transition.values[e] }
        }
        XCTAssertLessThan(maxRelative(dense, try load("transition").values()), 1e-5)

        let walked = RandomWalk.walk(pooled, channels: 21, transition: transition, logT: 8)
        XCTAssertLessThan(maxRelative(walked, try load("cam_rw").values()), 1e-4)
        let labels = RandomWalk.labels(walked: walked, channels: 21, geometry: g)
        let expected = try PNG.readIndexed("\(Self.directory)/labels.png")
        XCTAssertEqual(labels, expected.indices, "labels.png exactly")
        // Both classes and background occur, so a swapped channel shows.
        XCTAssertEqual(Set(labels), [0, 5, 15])
    }

    /// psa's dense squaring (float32 BLAS) gives the same scores and labels.
    func testDenseSquaringAgreesWithTheSparseWalk() throws {
        let g = Self.geometry
        let cams: [Float] = try load("cams").values()
        let classes = try load("cams.classes").values(as: Int32.self).map(Int.init)
        let pooled = RandomWalk.pooledScores(cams: cams, classes: classes, geometry: g, alpha: 16)
        let transition = RandomWalk.transition(affinities: try affinities(), pairs: g.pairs(), beta: 8)
        let dense = RandomWalk.walkDense(pooled, channels: 21, transition: transition, logT: 8)
        XCTAssertLessThan(maxRelative(RandomWalk.walk(pooled, channels: 21, transition: transition, logT: 8), dense), 1e-4)
        XCTAssertLessThan(maxRelative(dense.map(Double.init), try load("cam_rw").values()), 1e-4)
        XCTAssertEqual(RandomWalk.labels(walked: dense.map(Double.init), channels: 21, geometry: g),
                       try PNG.readIndexed("\(Self.directory)/labels.png").indices)
    }

    /// The whole of psa's `infer_aff.py` on the golden image: AffinityNet (width
    /// 16, the golden weights) on the padded image, then the walk of the CAMs.
    func testRefineOfTheGoldenImageGivesItsAffinitiesAndLabels() throws {
        let network = AffinityNetwork(widthDivisor: 16)
        let weights = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../NetworkTests/Golden/aff_w16.safetensors").standardized.path
        try network.store.load(try Safetensors.read(weights).tensors, from: weights)
        let image = try PNG.readRGB("\(Self.directory)/image.png")
        XCTAssertEqual([image.height, image.width], [100, 140])
        let affinities = RefineStage.affinities(network: network, image: image)
        let expected = try self.affinities()
        let worst = zip(affinities, expected).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst / expected.max()!, 1e-5, "AffinityNet's pair affinities on the padded image")
        let cams = CRFScores.CAMs(classes: try load("cams.classes").values(as: Int32.self).map(Int.init), maps: try load("cams").values(),
                                  width: 140, height: 100)
        let labels = RefineStage.labels(network: network, image: image, cams: cams, walk: .init())
        XCTAssertEqual(labels, try PNG.readIndexed("\(Self.directory)/labels.png").indices, "labels.png exactly")
    }
}
