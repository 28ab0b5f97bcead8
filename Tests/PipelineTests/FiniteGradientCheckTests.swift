import Kernels
@testable import TrainingLoop
import XCTest

/// The check that skips a step whose gradients hold a NaN or an infinity,
/// wherever in the buffer (vector body, chunk edges, scalar tail) it lies.
final class FiniteGradientCheckTests: XCTestCase {
    func testFindsEveryNonFiniteValueWhereverItLies() {
        for count in [1, 15, 16, 17, 1_000, 65_536 * 9 + 7] {
            let values = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
            defer { values.deallocate() }
            for i in 0..<count { values[i] = Float(i % 101) * 3e36 - 1.5e38 }  // large but finite
            XCTAssertTrue(Training.allFinite(values), "count \(count)")
            let positions = Set([0, count / 2, count - 1, max(0, count - 17), min(count - 1, 16), count * 3 / 4])
            for position in positions {
                for bad in [Float.nan, .infinity, -.infinity, .signalingNaN] {
                    let saved = values[position]
                    values[position] = bad
                    XCTAssertFalse(Training.allFinite(values), "\(bad) at \(position) of \(count)")
                    values[position] = saved
                }
            }
            XCTAssertTrue(Training.allFinite(values))
        }
    }

    func testAnEmptyBufferIsFinite() {
        XCTAssertTrue(Training.allFinite(UnsafeMutableBufferPointer(start: nil, count: 0)))
    }

    func testTheSameOnSeveralThreads() {
        let saved = Parallel.threadCount
        defer { Parallel.setThreadCount(saved) }
        Parallel.setThreadCount(3)
        let count = 65_536 * 13 + 5
        let values = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        defer { values.deallocate() }
        values.initialize(repeating: 1)
        XCTAssertTrue(Training.allFinite(values))
        for position in [0, count / 3, count - 1] {
            values[position] = .nan
            XCTAssertFalse(Training.allFinite(values), "NaN at \(position)")
            values[position] = 1
        }
    }
}
