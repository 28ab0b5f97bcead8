import Distributed
import Foundation

/// A known-answer test of every collective the trainer uses, run by
/// `sccam env --check-collectives`. Each rank contributes values derived from
/// its rank, so the expected result is known for any world size; each rank
/// reports what it received, so a caller (or a test) can check it too.
enum CollectiveCheck {
    struct RankResult: Codable {
        var allreduceFloat: [Float]
        var allreduceDouble: [Double]
        var allreduceMax: [Int32]
        var broadcast: [Float]
        var broadcastText: String
        var allgather: [String]
        /// Elements of a large (multi-chunk) blocking allreduce that differ from the expected sum.
        var largeAllreduceMismatches: Int
        /// The same for the non-blocking allreduce.
        var nonblockingAllreduceMismatches: Int
        var failures: [String]
        var passed: Bool { failures.isEmpty }
    }

    /// More than one 16 MB chunk, and not a multiple of it.
    static let largeCount = 5_000_003

    static func run(_ communicator: Communicator) throws -> (rank: RankResult, gathered: [[Float]]?) {
        let rank = communicator.rank, size = communicator.size
        let rankSum = Float(size * (size + 1) / 2)
        var failures: [String] = []

        var floats: [Float] = [Float(rank + 1), Float(10 * (rank + 1)), 0.25]
        try communicator.allreduceSum(&floats)
        if floats != [rankSum, 10 * rankSum, 0.25 * Float(size)] { failures.append("allreduce(Float) gave \(floats)") }

        var doubles: [Double] = [Double(rank) + 0.5]
        try communicator.allreduceSum(&doubles)
        if doubles != [Double(size * (size - 1) / 2) + 0.5 * Double(size)] {
            failures.append("allreduce(Double) gave \(doubles)")
        }

        var maxima: [Int32] = [Int32(rank), Int32(-rank)]
        try communicator.allreduceMax(&maxima)
        if maxima != [Int32(size - 1), 0] { failures.append("allreduce(max) gave \(maxima)") }

        var broadcast: [Float] = rank == 0 ? [3.5, -1, 42] : [0, 0, 0]
        try communicator.broadcast(&broadcast, root: 0)
        if broadcast != [3.5, -1, 42] { failures.append("broadcast gave \(broadcast)") }
        let text = try communicator.broadcast(string: rank == 0 ? "hello from rank 0" : "", root: 0)
        if text != "hello from rank 0" { failures.append("broadcast(string) gave \(text)") }

        let allgather = try communicator.allgather(string: String(repeating: "r", count: rank) + "ank \(rank)")
        let expectedAllgather = (0..<size).map { String(repeating: "r", count: $0) + "ank \($0)" }
        if allgather != expectedAllgather { failures.append("allgather gave \(allgather)") }

        // Rank r sends r + 1 copies of r: lengths differ on every rank.
        let gathered = try communicator.gather([Float](repeating: Float(rank), count: rank + 1), root: 0)
        if let gathered, gathered != (0..<size).map({ [Float](repeating: Float($0), count: $0 + 1) }) {
            failures.append("gather gave \(gathered)")
        }

        let large = try largeAllreduce(communicator, nonblocking: false)
        if large > 0 { failures.append("large allreduce: \(large) wrong elements") }
        let nonblocking = try largeAllreduce(communicator, nonblocking: true)
        if nonblocking > 0 { failures.append("non-blocking allreduce: \(nonblocking) wrong elements") }

        return (RankResult(allreduceFloat: floats, allreduceDouble: doubles, allreduceMax: maxima,
                           broadcast: broadcast, broadcastText: text, allgather: allgather,
                           largeAllreduceMismatches: large, nonblockingAllreduceMismatches: nonblocking,
                           failures: failures),
                gathered)
    }

    /// Element i of rank r is (r + 1) * (i % 7): small integers, so the float
    /// sums are exact whatever the reduction order.
    private static func largeAllreduce(_ communicator: Communicator, nonblocking: Bool) throws -> Int {
        let size = communicator.size
        let factor = Float(communicator.rank + 1)
        var values = (0..<largeCount).map { factor * Float($0 % 7) }
        if nonblocking {
            try values.withUnsafeMutableBufferPointer { buffer in
                let request = try communicator.startAllreduceSum(buffer)
                try request.wait()
            }
        } else {
            try communicator.allreduceSum(&values)
        }
        let rankSum = Float(size * (size + 1) / 2)
        var mismatches = 0
        for i in 0..<largeCount where values[i] != rankSum * Float(i % 7) { mismatches += 1 }
        return mismatches
    }
}
