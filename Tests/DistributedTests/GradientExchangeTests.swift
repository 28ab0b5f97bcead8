import Distributed
import TestSupport
import XCTest

final class GradientExchangeTests: XCTestCase {
    func testBlocksCoverTheBufferInRankOrderWithSizesWithinOne() {
        for count in [0, 1, 2, 5, 7, 1_000, 5_000_003] {
            for ranks in [1, 2, 3, 4, 7, 16] {
                let blocks = BlockPartition(count: count, ranks: ranks)
                XCTAssertEqual(blocks.start(0), 0)
                XCTAssertEqual(blocks.start(ranks), count)
                let sizes = (0..<ranks).map(blocks.size)
                XCTAssertEqual(sizes.reduce(0, +), count)
                XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1, "count \(count), \(ranks) ranks")
                for block in 1..<ranks { XCTAssertEqual(blocks.range(block - 1).upperBound, blocks.range(block).lowerBound) }
            }
        }
    }

    func testBFloat16RoundsToNearestEven() {
        XCTAssertEqual(BFloat16.round(1.0), 0x3F80)
        XCTAssertEqual(BFloat16.round(-2.0), 0xC000)
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa.
        XCTAssertEqual(BFloat16.round(1 + 0x1p-8), 0x3F80)
        XCTAssertEqual(BFloat16.round(1 + 3 * 0x1p-8), 0x3F82)
        XCTAssertEqual(BFloat16.round(1 + 0x1p-8 + 0x1p-20), 0x3F81)
        XCTAssertEqual(BFloat16.widen(BFloat16.round(.infinity)), .infinity)
        XCTAssertEqual(BFloat16.widen(BFloat16.round(-.infinity)), -.infinity)
        XCTAssertTrue(BFloat16.widen(BFloat16.round(.nan)).isNaN)
        // The largest float rounds up past bfloat16's largest finite value.
        XCTAssertEqual(BFloat16.widen(BFloat16.round(.greatestFiniteMagnitude)), .infinity)
        XCTAssertEqual(BFloat16.widen(BFloat16.round(0)), 0)
        XCTAssertEqual(BFloat16.widen(BFloat16.round(1e-40)).bitPattern >> 16, Float(1e-40).bitPattern >> 16, "subnormals keep their top bits")
    }

    func testBFloat16RelativeErrorIsAtMostTwoToTheMinusEight() {
        var generator = SeededGenerator(seed: 11)
        var worst: Float = 0
        for _ in 0..<100_000 {
            let value = Float.random(in: -1...1, using: &generator) * Float(sign: .plus, exponent: Int.random(in: -60...60, using: &generator), significand: 1)
            guard value != 0 else { continue }
            worst = max(worst, abs(BFloat16.widen(BFloat16.round(value)) - value) / abs(value))
        }
        XCTAssertLessThanOrEqual(worst, 0x1p-8, "half a unit in the last of 8 significant bits")
        XCTAssertGreaterThan(worst, 0x1p-9, "values were rounded to bfloat16, not kept")
    }

    /// Three ranks split every bucket into uneven blocks; every rank must end
    /// with the exact sums (fp32) or the sums rounded once (bf16), both ways of waiting.
    func testThreeRanksExchangeUnevenBlocks() throws {
        let result = try TestProcess.mpirun(ranks: 3, ["env", "--check-collectives", "--json", "--probe-seconds", "0"])
        XCTAssertEqual(result.status, 0, "\(result)")
        struct Env: Decodable {
            struct Rank: Decodable {
                struct Check: Decodable {
                    let exchangeMismatches: [String: Int]
                    let failures: [String]
                }
                let collectives: Check?
            }
            let transport: String
            let ranks: [Rank]
        }
        let env = try JSONDecoder().decode(Env.self, from: Data(result.standardOutput.utf8))
        XCTAssertTrue(env.transport.contains("MPI_THREAD_MULTIPLE"), env.transport)
        XCTAssertEqual(env.ranks.count, 3)
        for rank in env.ranks {
            let check = try XCTUnwrap(rank.collectives)
            XCTAssertEqual(check.exchangeMismatches, ["fp32 polled": 0, "fp32 blocking": 0, "bf16 polled": 0, "bf16 blocking": 0])
            XCTAssertEqual(check.failures, [])
        }
    }

    /// `bench allreduce` measures every variant on 2 ranks (its speed is not tested, only that each ran).
    func testBenchAllreduceMeasuresEveryVariant() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-bench-allreduce")
        defer { temporary.remove() }
        let json = temporary.path + "/report.json"
        let result = try TestProcess.mpirun(ranks: 2, ["bench", "allreduce", "--threads", "1", "--sizes", "1,2", "--iterations", "1",
                                                       "--json", json])
        XCTAssertEqual(result.status, 0, "\(result)")
        struct Report: Decodable {
            struct Variant: Decodable {
                let name: String
                let bestBusGBps: [Double]
            }
            let ranks: Int
            let sizesMB: [Int]
            let linkGBps: Double
            let variants: [Variant]
        }
        let report = try JSONDecoder().decode(Report.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        XCTAssertEqual(report.ranks, 2)
        XCTAssertEqual(report.sizesMB, [1, 2])
        XCTAssertGreaterThan(report.linkGBps, 0)
        let names = report.variants.map(\.name)
        for expected in ["blocking, library's choice", "blocking, ring", "polled, library's choice", "polled, ring"] {
            XCTAssertTrue(names.contains(expected), "\(expected) missing from \(names)")
        }
        XCTAssertTrue(names.contains { $0.contains("bf16") }, "\(names)")
        for variant in report.variants {
            XCTAssertEqual(variant.bestBusGBps.count, 2, variant.name)
            XCTAssertTrue(variant.bestBusGBps.allSatisfy { $0 > 0 && $0.isFinite }, "\(variant.name): \(variant.bestBusGBps)")
        }
        XCTAssertTrue(result.standardOutput.contains("fastest fp32:"), result.standardOutput)
        let alone = try TestProcess.sccam(["bench", "allreduce", "--threads", "1"])
        XCTAssertNotEqual(alone.status, 0)
        XCTAssertTrue(alone.standardError.contains("needs at least 2 ranks"), alone.standardError)
    }
}
