import Foundation

/// A known-answer test of every collective the trainer uses, run by
/// `sccam env --check-collectives`. Each rank contributes values derived from
/// its rank, so the expected result is known for any world size; each rank
/// reports what it received, so a caller (or a test) can check it too.
public enum CollectiveCheck {
    public struct RankResult: Codable, Sendable {
        public var allreduceFloat: [Float]
        public var allreduceDouble: [Double]
        public var allreduceMax: [Int32]
        public var broadcast: [Float]
        public var broadcastText: String
        public var allgather: [String]
        /// Elements of a large (multi-chunk) blocking allreduce that differ from the expected sum.
        public var largeAllreduceMismatches: Int
        /// The same through the gradient exchange's thread, per wire format and way of waiting
        /// (bf16 against the exact sum rounded to bfloat16 once).
        public var exchangeMismatches: [String: Int]
        public var failures: [String]
        public var passed: Bool { failures.isEmpty }
    }

    /// More than one 16 MB chunk, and not a multiple of it.
    static let largeCount = 5_000_003

    public static func run(_ communicator: Communicator) throws -> (rank: RankResult, gathered: [[Float]]?) {
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

        // Whole values: an exact Double, a NaN, an absent optional and non-ASCII text survive the trip.
        struct Probe: Codable {
            var rank: Int
            var exact: Double
            var notANumber: Double
            var absent: Double?
            var text: String
        }
        let sent = Probe(rank: 0, exact: 0.1 + 0.2, notANumber: .nan, absent: nil, text: "Zürich, 東京")
        let probe = try communicator.broadcast(rank == 0 ? sent : nil, root: 0)
        if probe.exact != sent.exact || !probe.notANumber.isNaN || probe.absent != nil || probe.text != sent.text || probe.rank != 0 {
            failures.append("broadcast(Codable) gave \(probe)")
        }
        let probes = try communicator.allgather(value: Probe(rank: rank, exact: Double(rank) / 3, notANumber: .nan, absent: Double(rank), text: "r\(rank)"))
        if probes.map(\.rank) != Array(0..<size) || probes.map(\.exact) != (0..<size).map({ Double($0) / 3 })
            || probes.map(\.text) != (0..<size).map({ "r\($0)" }) || !probes.allSatisfy({ $0.notANumber.isNaN && $0.absent == Double($0.rank) }) {
            failures.append("allgather(Codable) gave \(probes)")
        }

        let large = try largeAllreduce(communicator)
        if large > 0 { failures.append("large allreduce: \(large) wrong elements") }
        var exchanged: [String: Int] = [:]
        for wireFormat in GradientWireFormat.allCases {
            for progress in ExchangeProgress.allCases {
                let name = "\(wireFormat.rawValue) \(progress.rawValue)"
                let wrong = try exchangedAllreduce(communicator, settings: .init(bucketBytes: 3 << 20, wireFormat: wireFormat,
                                                                                  progress: progress))
                exchanged[name] = wrong
                if wrong > 0 { failures.append("gradient exchange (\(name)): \(wrong) wrong elements") }
            }
        }

        return (RankResult(allreduceFloat: floats, allreduceDouble: doubles, allreduceMax: maxima,
                           broadcast: broadcast, broadcastText: text, allgather: allgather,
                           largeAllreduceMismatches: large, exchangeMismatches: exchanged,
                           failures: failures),
                gathered)
    }

    /// Element i of rank r is (r + 1) * (i % 7): small integers, so the float
    /// sums are exact whatever the reduction order.
    private static func largeAllreduce(_ communicator: Communicator) throws -> Int {
        var values = contribution(communicator)
        try communicator.allreduceSum(&values)
        return mismatches(values, communicator, rounding: { $0 })
    }

    /// The same values reported to a `GradientExchange` block by block, tail
    /// first, as backward reports them; two steps through one exchange.
    private static func exchangedAllreduce(_ communicator: Communicator, settings: GradientExchange.Settings) throws -> Int {
        let bf16 = settings.wireFormat == .bf16
        var values = contribution(communicator)
        var wrong = 0
        try values.withUnsafeMutableBufferPointer { buffer in
            let exchange = try GradientExchange(communicator: communicator, gradients: buffer, settings: settings)
            defer { exchange.close() }
            for step in 0..<2 {
                if step > 0 { _ = contribution(communicator).withUnsafeBufferPointer { buffer.update(fromContentsOf: $0) } }
                exchange.beginStep()
                for lowerBound in stride(from: largeCount - 1_000_000, to: 0, by: -1_000_000) {
                    exchange.gradientsReady(from: lowerBound)
                }
                exchange.gradientsReady(from: 0)
                _ = try exchange.finishStep()
                wrong += mismatches(Array(buffer), communicator, rounding: { bf16 ? BFloat16.widen(BFloat16.round($0)) : $0 })
            }
        }
        return wrong
    }

    private static func contribution(_ communicator: Communicator) -> [Float] {
        let factor = Float(communicator.rank + 1)
        return (0..<largeCount).map { factor * Float($0 % 7) }
    }

    private static func mismatches(_ values: [Float], _ communicator: Communicator, rounding: (Float) -> Float) -> Int {
        let size = communicator.size
        let rankSum = Float(size * (size + 1) / 2)
        var wrong = 0
        for i in 0..<largeCount where values[i] != rounding(rankSum * Float(i % 7)) { wrong += 1 }
        return wrong
    }
}
