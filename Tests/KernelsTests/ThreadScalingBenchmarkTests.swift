@testable import Benchmarks
@testable import Kernels
import TestSupport
import XCTest

/// `sccam bench threads`: the arithmetic of its table, and the command end to end on a thin network.
final class ThreadScalingBenchmarkTests: XCTestCase {
    private func sample(_ threads: Int, step: Double, convolution: Double, optimiser: Double, triad: Double,
                        writes: Double = 10, fma: Double) -> ThreadScalingBenchmark.Sample {
        .init(threads: threads, secondsPerStep: step, phaseSeconds: [.oneDNNConvolution: convolution, .optimizer: optimiser],
              unprofiledSeconds: step - convolution - optimiser, triadGBPerSecond: triad, writeGBPerSecond: writes, fmaGFLOPS: fma)
    }

    func testTimesSpeedUpByFirstOverLastAndRatesByLastOverFirst() {
        let report = ThreadScalingBenchmark.Report(counts: [1, 2], samples: [
            [sample(1, step: 4.0, convolution: 3.0, optimiser: 0.2, triad: 20, fma: 100),
             sample(2, step: 2.4, convolution: 1.6, optimiser: 0.16, triad: 30, writes: 14, fma: 198)],
            [sample(1, step: 4.4, convolution: 3.2, optimiser: 0.3, triad: 18, fma: 101),
             sample(2, step: 2.0, convolution: 1.5, optimiser: 0.12, triad: 27, writes: 16, fma: 200)],
        ])
        let lines = report.lines()
        func row(_ name: String) -> [String] {
            guard let line = lines.first(where: { $0.hasPrefix(name) }) else {
                XCTFail("no row \(name) in \(lines)")
                return []
            }
            return line.dropFirst(28).split(separator: " ").map(String.init)
        }
        // Best step 4.0 at one thread, 2.0 at two: 2.00x; the rounds' own 1.67x and 2.20x; share 100%.
        XCTAssertEqual(row("the step"), ["4.000", "s", "2.000", "s", "2.00x", "1.67-2.20x", "100.0%"])
        // Best 3.0 against 1.5; rounds 3.0 / 1.6 = 1.88x and 3.2 / 1.5 = 2.13x; 1.5 of a 2.0 s step.
        XCTAssertEqual(row("oneDNN convolution"), ["3.000", "s", "1.500", "s", "2.00x", "1.88-2.13x", "75.0%"])
        XCTAssertEqual(row("optimiser"), ["0.200", "s", "0.120", "s", "1.67x", "1.25-2.50x", "6.0%"])
        // Rates: the largest at each count, and last over first.
        XCTAssertEqual(row("machine: memory triad"), ["20.0", "GB/s", "30.0", "GB/s", "1.50x", "1.50-1.50x"])
        // Rounds 14 / 10 and 16 / 10.
        XCTAssertEqual(row("machine: memory writes"), ["10.0", "GB/s", "16.0", "GB/s", "1.60x", "1.40-1.60x"])
        XCTAssertEqual(row("machine: FMA peak"), ["101.0", "GF/s", "200.0", "GF/s", "1.98x", "1.98-1.98x"])
        XCTAssertNil(lines.first { $0.hasPrefix("sgemm") }, "a phase that never ran is left out")
    }

    func testMemoryTriadAndWritesMoveTheBytes() {
        let bandwidth = MemoryBandwidth(floats: 1 << 20)
        for rate in [bandwidth.triad(repetitions: 2), bandwidth.writes(repetitions: 2)] {
            XCTAssertTrue(rate.isFinite && rate > 0.1, "\(rate) GB/s")
        }
    }

    func testCommandPrintsEveryRowAndRefusesOneCount() throws {
        let folder = try TemporaryDirectory()
        defer { folder.remove() }
        let result = try TestProcess.sccam(["bench", "threads", "--width-divisor", "64", "--thread-counts", "1,2", "--rounds", "1",
                                            "--steps", "1", "--folder", folder.path])
        XCTAssertEqual(result.status, 0, result.standardError)
        for row in ["the step", "oneDNN convolution", "the rest (unprofiled)", "machine: memory triad", "machine: memory writes",
                    "machine: FMA peak"] {
            XCTAssertTrue(result.standardOutput.contains("\n" + row), "\(row) missing:\n\(result.standardOutput)")
        }
        let one = try TestProcess.sccam(["bench", "threads", "--thread-counts", "2", "--folder", folder.path])
        XCTAssertNotEqual(one.status, 0)
        XCTAssertTrue(one.standardError.contains("--thread-counts must list two or more"), one.standardError)
    }

    /// A oneDNN primitive keeps the work split of the thread count it was made
    /// under, so a new count must make new ones (bench threads at 1 then 2).
    func testChangingTheThreadCountDropsThePrimitivesMadeForTheOldOne() {
        let saved = Parallel.threadCount
        defer { Parallel.setThreadCount(saved) }
        let g = ConvolutionGeometry(inputChannels: 16, outputChannels: 16, kernel: 3, padding: 1)
        Parallel.setThreadCount(1)
        _ = DNNLConvolution.forwardImplementation(g, precision: .fp32, batch: 1, height: 8, width: 8, hasBias: false, algorithm: .direct)
        XCTAssertGreaterThan(DNNLConvolution.cachedPlanCount, 0)
        Parallel.setThreadCount(1)
        XCTAssertGreaterThan(DNNLConvolution.cachedPlanCount, 0, "the same count keeps them")
        Parallel.setThreadCount(2)
        XCTAssertEqual(DNNLConvolution.cachedPlanCount, 0)
    }
}
