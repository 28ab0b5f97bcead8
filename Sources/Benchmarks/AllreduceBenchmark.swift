import Distributed
import Foundation

/// Bus bandwidth of every way this job can sum a gradient bucket, per bucket
/// size, against the link's own bandwidth, measured in one run.
///
/// Bus bandwidth is nccl-tests' definition: 2(p-1)/p x bytes / time, the rate
/// each rank's link carries in a bandwidth-optimal allreduce, so it compares
/// directly with the link's one-way bandwidth whatever the rank count. bf16
/// counts the float32 bytes it stands for (what the gradients amount to).
public enum AllreduceBenchmark {
    public struct Variant: Codable, Sendable {
        public let name: String
        /// Best and median bus bandwidth per size, GB/s.
        public var bestBusGBps: [Double] = []
        public var medianBusGBps: [Double] = []
        /// Best time per size, seconds.
        public var bestSeconds: [Double] = []
    }

    public struct Report: Codable, Sendable {
        public let ranks: Int
        public let sizesMB: [Int]
        /// One-way bandwidth from rank 2i to rank 2i+1 (the slowest pair), GB/s.
        public let linkGBps: Double
        public var variants: [Variant]
    }

    /// `log` hears each variant's line as it is measured (rank 0 prints it).
    public static func run(communicator: Communicator, sizesMB: [Int], iterations: Int, includeLibraryAlgorithms: Bool = true,
                           log: (String) -> Void) throws -> Report {
        let largest = (sizesMB.max() ?? 1) << 20
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: largest / 4)
        defer { buffer.deallocate() }
        // First touch is slow on these machines: fill once, outside every timing.
        for i in buffer.indices { buffer[i] = Float(i % 13) * 0.125 }
        let linkGBps = try linkBandwidth(communicator, iterations: iterations)
        log(String(format: "link: %.2f GB/s one way between neighbouring ranks (32 MB sent from rank 2i to 2i+1, slowest pair)", linkGBps))
        var variants: [Variant] = []
        func measure(_ name: String, on channel: Communicator, wireFormat: GradientWireFormat, progress: ExchangeProgress) throws {
            let reduction = BucketReduction(communicator: channel, wireFormat: wireFormat, progress: progress, maxFloats: largest / 4)
            var variant = Variant(name: name)
            for size in sizesMB {
                let bucket = UnsafeMutableBufferPointer(rebasing: buffer[0..<(size << 20) / 4])
                var times: [Double] = []
                for iteration in -1..<iterations {
                    try channel.barrier()
                    let start = DispatchTime.now().uptimeNanoseconds
                    try reduction.reduce(bucket)
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    if iteration >= 0 { times.append(seconds) }
                    // Keep the values bounded: the next iteration sums the sums.
                    scale(bucket, by: 1 / Float(channel.size))
                }
                try channel.allreduceMax(&times)
                let bus = times.map { busBandwidth(bytes: size << 20, ranks: channel.size, seconds: $0) }.sorted()
                variant.bestBusGBps.append(bus.last!)
                variant.medianBusGBps.append(bus[bus.count / 2])
                variant.bestSeconds.append(times.min()!)
            }
            log(name.padding(toLength: 36, withPad: " ", startingAt: 0)
                     + variant.bestBusGBps.map { String(format: "%7.2f", $0) }.joined(separator: " "))
            variants.append(variant)
        }
        log("bus bandwidth, GB/s (best of \(iterations)), per bucket size in MB:")
        log(String(repeating: " ", count: 36) + sizesMB.map { String(format: "%7d", $0) }.joined(separator: " "))
        // Blocking MPI_Allreduce, each algorithm on a communicator made after forcing it.
        let blocking = includeLibraryAlgorithms ? LibraryAllreduceAlgorithms.blocking.algorithms() : []
        for algorithm in blocking where LibraryAllreduceAlgorithms.blocking.force(algorithm) {
            let channel = try communicator.duplicate()
            defer { channel.finalize() }
            try measure("blocking, " + (algorithm.value == 0 ? "library's choice" : algorithm.name), on: channel, wireFormat: .fp32, progress: .blocking)
        }
        if let automatic = blocking.first(where: { $0.value == 0 }) { _ = LibraryAllreduceAlgorithms.blocking.force(automatic) }
        let channel = try communicator.duplicate()
        defer { channel.finalize() }
        if blocking.isEmpty { try measure("blocking, library's choice", on: channel, wireFormat: .fp32, progress: .blocking) }
        // Polled MPI_Iallreduce (what the exchange runs), each algorithm: libnbc reads its choice at every call.
        let nonblocking = includeLibraryAlgorithms ? LibraryAllreduceAlgorithms.nonblocking.algorithms() : []
        for algorithm in nonblocking where LibraryAllreduceAlgorithms.nonblocking.force(algorithm) {
            try measure("polled, " + (algorithm.value == 0 ? "library's choice" : algorithm.name), on: channel, wireFormat: .fp32, progress: .polled)
        }
        if let automatic = nonblocking.first(where: { $0.value == 0 }) { _ = LibraryAllreduceAlgorithms.nonblocking.force(automatic) }
        if nonblocking.isEmpty { try measure("polled, library's choice", on: channel, wireFormat: .fp32, progress: .polled) }
        try measure("polled, bf16 wire (all-to-all, all-gather)", on: channel, wireFormat: .bf16, progress: .polled)
        return Report(ranks: communicator.size, sizesMB: sizesMB, linkGBps: linkGBps, variants: variants)
    }

    public static func busBandwidth(bytes: Int, ranks: Int, seconds: Double) -> Double {
        guard ranks > 1, seconds > 0 else { return 0 }
        return 2 * Double(ranks - 1) / Double(ranks) * Double(bytes) / seconds / 1e9
    }

    /// Rank 2i sends 32 MB to rank 2i+1 (all pairs at once); a lone last rank idles.
    static func linkBandwidth(_ communicator: Communicator, iterations: Int) throws -> Double {
        guard communicator.size > 1 else { return 0 }
        let bytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 32 << 20)
        defer { bytes.deallocate() }
        bytes.initialize(repeating: 1)
        let peer = communicator.rank ^ 1
        var times: [Double] = []
        for iteration in -1..<iterations {
            try communicator.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            if peer < communicator.size {
                if communicator.rank % 2 == 0 { try communicator.send(bytes, to: peer) } else { try communicator.receive(bytes, from: peer) }
            }
            if iteration >= 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        }
        try communicator.allreduceMax(&times)
        return Double(bytes.count) / times.min()! / 1e9
    }

    private static func scale(_ values: UnsafeMutableBufferPointer<Float>, by factor: Float) {
        for i in values.indices { values[i] *= factor }
    }
}
