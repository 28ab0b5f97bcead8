import Formats
import Foundation
import Network
import Pipeline
import XCTest

/// The walk's pair sets: psa's (the cells whose 34 targets lie inside the
/// grid) and the whole grid's (every pair of cells closer than the radius).
final class PairCoverageTests: XCTestCase {
    /// Every unordered pair of distinct cells closer than the radius, as (smaller, larger).
    private func pairsWithinRadius(height: Int, width: Int) -> Set<[Int]> {
        var pairs = Set<[Int]>()
        for a in 0..<(height * width) {
            for b in (a + 1)..<(height * width) {
                let dy = b / width - a / width, dx = b % width - a % width
                if dy * dy + dx * dx < PairGeometry.radius * PairGeometry.radius { pairs.insert([a, b]) }
            }
        }
        return pairs
    }

    private func listedPairs(_ geometry: PairGeometry) -> [[Int]] {
        PairGeometry.displacements.indices.flatMap { d in
            geometry.from.indices.compactMap { k in
                let to = geometry.to(d, k), from = geometry.from[k]
                return to < 0 ? nil : [min(from, to), max(from, to)]
            }
        }
    }

    func testTheWholeGridListsEveryPairWithinTheRadiusOnceAndPsaASubset() {
        for (height, width) in [(12, 12), (13, 18), (3, 5), (1, 1), (7, 2)] {
            let whole = PairGeometry(height: height, width: width, coverage: .wholeGrid)
            let listed = listedPairs(whole)
            XCTAssertEqual(listed.count, Set(listed).count, "\(height)x\(width): a pair listed twice")
            XCTAssertEqual(Set(listed), pairsWithinRadius(height: height, width: width), "\(height)x\(width)")
            XCTAssertEqual(whole.from, Array(0..<(height * width)))

            // psa's pairs are the whole grid's pairs from its own from cells, with the same targets.
            let psa = PairGeometry(height: height, width: width)
            XCTAssertTrue(Set(listedPairs(psa)).isSubset(of: Set(listed)))
            for d in PairGeometry.displacements.indices {
                for (k, from) in psa.from.enumerated() {
                    XCTAssertGreaterThanOrEqual(psa.to(d, k), 0)
                    XCTAssertEqual(psa.to(d, k), whole.to(d, from))
                }
            }
        }
        // A 12 x 12 grid (a 96-pixel image): psa starts pairs from 32 of its 144 cells.
        XCTAssertEqual(PairGeometry(height: 12, width: 12).from.count, 32)
        XCTAssertEqual(Set(listedPairs(PairGeometry(height: 12, width: 12))).count, 32 * 34)
        XCTAssertEqual(pairsWithinRadius(height: 12, width: 12).count, 3_384)  // sum over the 34 (dy, dx) of (12 - dy)(12 - |dx|)
    }

    /// AffinityNet gives psa's pairs the same affinities under either coverage,
    /// and the whole grid's walk connects the border cells among themselves.
    func testWholeGridAffinitiesExtendPsasAndMakeAStochasticTransition() throws {
        let network = AffinityNetwork(widthDivisor: 16)
        let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let weights = golden.appendingPathComponent("../NetworkTests/Golden/aff_w16.safetensors").standardized.path
        try network.store.load(try Safetensors.read(weights).tensors, from: weights)
        let image = try PNG.readRGB(golden.appendingPathComponent("Golden/random_walk/image.png").path)
        let g = RandomWalk.Geometry(height: image.height, width: image.width)

        let psaAffinities = RefineStage.affinities(network: network, image: image)
        network.inferencePairCoverage = .wholeGrid
        let wholeAffinities = RefineStage.affinities(network: network, image: image)
        let psa = g.pairs(), whole = g.pairs(.wholeGrid)
        XCTAssertEqual(network.pairs, whole)
        XCTAssertEqual(wholeAffinities.count, whole.pairCount)
        for d in PairGeometry.displacements.indices {
            for (k, from) in psa.from.enumerated() {
                XCTAssertEqual(psaAffinities[d * psa.from.count + k], wholeAffinities[d * whole.from.count + from], accuracy: 1e-6)
            }
            for k in whole.from.indices {
                let a = wholeAffinities[d * whole.from.count + k]
                if whole.to(d, k) < 0 { XCTAssertEqual(a, 0) } else { XCTAssertTrue(a > 0 && a <= 1, "affinity \(a)") }
            }
        }

        let transition = RandomWalk.transition(affinities: wholeAffinities, pairs: whole, beta: 8)
        var columnSums = [Double](repeating: 0, count: g.cells), corner = Set<Int32>()
        for j in 0..<g.cells {
            for e in transition.columnStart[j]..<transition.columnStart[j + 1] {
                columnSums[j] += transition.values[e]
                if j == 0 { corner.insert(transition.rows[e]) }
            }
        }
        for sum in columnSums { XCTAssertEqual(sum, 1, accuracy: 1e-12) }
        // The top-left cell reaches its right neighbour directly; under psa's pairs it cannot.
        XCTAssertTrue(corner.contains(1))
        let psaTransition = RandomWalk.transition(affinities: psaAffinities, pairs: psa, beta: 8)
        XCTAssertFalse(psaTransition.rows[psaTransition.columnStart[0]..<psaTransition.columnStart[1]].contains(1))

        // Training keeps psa's pairs whatever the inference coverage.
        network.inferencePairCoverage = .psa
        XCTAssertEqual(RefineStage.affinities(network: network, image: image), psaAffinities)
    }

    /// A run.json written before the walk had a pair setting reads as psa's pairs.
    func testWalkSettingsWithoutPairsDecodeAsPsas() throws {
        let old = #"{"alpha": 16, "beta": 8, "logT": 8}"#
        let decoded = try JSONDecoder().decode(RandomWalk.Parameters.self, from: Data(old.utf8))
        XCTAssertEqual(decoded, RandomWalk.Parameters())
        let whole = RandomWalk.Parameters(alpha: 2, beta: 16, logT: 8, pairs: .wholeGrid)
        XCTAssertEqual(try JSONDecoder().decode(RandomWalk.Parameters.self, from: JSONEncoder().encode(whole)), whole)
    }
}
