import Benchmarks
import Kernels
import XCTest

/// The peak loops must do every multiply-add they are credited with: each
/// accumulator's result is checked against the same arithmetic in Swift.
final class PeakLoopTests: XCTestCase {
    func testFMALoopUpdatesEveryAccumulator() throws {
        let lanes = FMAPeak.Instruction.fma.lanes
        try XCTSkipIf(lanes == 0, "this CPU has no AVX2 FMA")
        // Start values where the FMA is a fixed point (1.0, with multiplier
        // 0.999 and addend 0.001) sit beside ones that move.
        let start: [Float] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
        let iterations = 1000
        let sums = FMAPeak.Instruction.fma.run(iterations: iterations, start: start, first: 0.999, second: 0.001)
        for (index, value) in start.enumerated() {
            var accumulator = value
            for _ in 0..<iterations { accumulator = Float(0.001).addingProduct(accumulator, 0.999) }
            XCTAssertEqual(sums[index], Float(lanes) * accumulator, accuracy: 1e-6 * Float(lanes), "accumulator \(index)")
        }
        XCTAssertNotEqual(sums[0], sums[1], "different starts must give different results")
    }

    func testBFloat16DotLoopUpdatesEveryAccumulator() throws {
        try XCTSkipUnless(FMAPeak.Instruction.bf16DotProduct.isAvailable, "this CPU has no AVX512_BF16")
        // Each round adds 2 * 0.5 * 2^-7 = 2^-7 to every lane: exact in float32.
        let start = (1...12).map(Float.init)
        let sums = FMAPeak.Instruction.bf16DotProduct.run(iterations: 640, start: start, first: 0.5, second: 1.0 / 128)
        for (index, value) in start.enumerated() {
            XCTAssertEqual(sums[index], 16 * (value + 5), "accumulator \(index)")
        }
    }

    func testMeasurementCountsTheLoopsOwnWork() throws {
        let fma = FMAPeak.measure(.fma, threads: 1, seconds: 0.02)
        XCTAssertEqual(fma.lanes, FMAPeak.Instruction.fma.lanes)
        if fma.lanes > 0 { XCTAssertGreaterThan(fma.gflops, 0) } else { XCTAssertEqual(fma.gflops, 0) }
        let dot = FMAPeak.measure(.bf16DotProduct, threads: 1, seconds: 0.02)
        XCTAssertEqual(dot.gflops > 0, FMAPeak.Instruction.bf16DotProduct.isAvailable)
    }
}
