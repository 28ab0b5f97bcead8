import Foundation
import XCTest
@testable import Kernels

final class ParallelTests: XCTestCase {
    private func withThreads<T>(_ count: Int, _ body: () throws -> T) rethrows -> T {
        let saved = Parallel.threadCount
        defer { Parallel.setThreadCount(saved) }
        Parallel.setThreadCount(count)
        return try body()
    }

    /// Sums of i * i over ranges, written per index: every index exactly once.
    private static func squares(_ count: Int, balanced: Bool) -> [Int] {
        var out = [Int](repeating: -1, count: count)
        out.withUnsafeMutableBufferPointer { buffer in
            let out = UncheckedSendable(buffer.baseAddress!)
            let body: (Range<Int>) -> Void = { range in for i in range { out.value[i] = i * i } }
            if balanced {
                Parallel.forBalancedRanges(count, minimumChunk: 7, body)
            } else {
                Parallel.forRanges(count, minimumChunk: 7, body)
            }
        }
        return out
    }

    func testRangesCoverEveryIndexOnceWithAndWithoutTheSpinningTeam() {
        let expected = (0..<1000).map { $0 * $0 }
        for threads in [1, 2, 3] {
            withThreads(threads) {
                XCTAssertEqual(Self.squares(1000, balanced: false), expected)
                XCTAssertEqual(Self.squares(1000, balanced: true), expected)
                Parallel.withSpinningWorkers {
                    if threads > 1 { XCTAssertNotNil(Parallel.team, "a team while the body runs") } else { XCTAssertNil(Parallel.team) }
                    for _ in 0..<200 {
                        XCTAssertEqual(Self.squares(1000, balanced: false), expected)
                        XCTAssertEqual(Self.squares(1000, balanced: true), expected)
                    }
                }
                XCTAssertNil(Parallel.team, "the team leaves with the body")
            }
        }
    }

    /// A loop started inside a team loop runs without the team (inline or on
    /// Dispatch), and a second `withSpinningWorkers` inside the first reuses it.
    func testNestedLoopsAndScopes() {
        withThreads(3) {
            let total = Parallel.withSpinningWorkers { () -> Int in
                Parallel.withSpinningWorkers {
                    var sums = [Int](repeating: 0, count: 6)
                    sums.withUnsafeMutableBufferPointer { buffer in
                        let sums = UncheckedSendable(buffer.baseAddress!)
                        Parallel.forEach(6) { outer in
                            var inner = [Int](repeating: 0, count: 100)
                            inner.withUnsafeMutableBufferPointer { values in
                                let values = UncheckedSendable(values.baseAddress!)
                                Parallel.forRanges(100, minimumChunk: 10) { range in for i in range { values.value[i] = i + outer } }
                            }
                            sums.value[outer] = inner.reduce(0, +)
                        }
                    }
                    return sums.reduce(0, +)
                }
            }
            XCTAssertEqual(total, (0..<6).map { 4950 + 100 * $0 }.reduce(0, +))
        }
    }

    /// Another thread's loops never run on a team it does not own.
    func testLoopsOfAnotherThreadDoNotUseTheTeam() {
        withThreads(2) {
            Parallel.withSpinningWorkers {
                let done = DispatchSemaphore(value: 0)
                let result = UncheckedSendable(UnsafeMutablePointer<[Int]>.allocate(capacity: 1))
                Thread {
                    result.value.initialize(to: Self.squares(500, balanced: true))
                    done.signal()
                }.start()
                XCTAssertEqual(Self.squares(500, balanced: false), (0..<500).map { $0 * $0 })
                done.wait()
                XCTAssertEqual(result.value.pointee, (0..<500).map { $0 * $0 })
                result.value.deinitialize(count: 1)
                result.value.deallocate()
            }
        }
    }

    /// Per task of a two-task loop: whether it ran inside an OpenMP region.
    private static func regionFlags() -> [Bool] {
        var flags = [Bool](repeating: false, count: 2)
        flags.withUnsafeMutableBufferPointer { buffer in
            let flags = UncheckedSendable(buffer.baseAddress!)
            Parallel.forEach(2) { flags.value[$0] = Parallel.isInsideOpenMPRegion }
        }
        return flags
    }

    /// The compute thread's loops run on OpenMP's team; another thread's (a
    /// data loader's) keep off it, since a second team would make OpenMP sleep
    /// between regions; loops inside a region run inline. Each still covers
    /// every index once.
    func testOnlyTheComputeThreadsLoopsRunOnOpenMPsTeam() {
        withThreads(2) {
            XCTAssertEqual(Self.regionFlags(), [true, true], "the compute thread's loop runs on the team")
            let done = DispatchSemaphore(value: 0)
            let result = UncheckedSendable(UnsafeMutablePointer<([Bool], [Int])>.allocate(capacity: 1))
            Thread {
                result.value.initialize(to: (Self.regionFlags(), Self.squares(500, balanced: true)))
                done.signal()
            }.start()
            done.wait()
            XCTAssertEqual(result.value.pointee.0, [false, false], "another thread's loop keeps off the team")
            XCTAssertEqual(result.value.pointee.1, (0..<500).map { $0 * $0 })
            result.value.deinitialize(count: 1)
            result.value.deallocate()

            var nested = [Int](repeating: 0, count: 4)
            nested.withUnsafeMutableBufferPointer { buffer in
                let nested = UncheckedSendable(buffer.baseAddress!)
                Parallel.forEach(2) { outer in
                    Parallel.forEach(2) { inner in nested.value[outer * 2 + inner] = outer * 2 + inner + 1 }
                }
            }
            XCTAssertEqual(nested, [1, 2, 3, 4])
        }
    }
}
