import Foundation

/// Generated malformed inputs for a reader of outside bytes: truncations,
/// bit flips, overwritten and repeated runs, extreme integers written over
/// header fields, splices of two seeds, plus the reader's own hostile cases.
/// A case passes when the reader returns or throws; a crash ends the test
/// process, a hang or a large allocation fails the bounds checked here.
///
/// `SCCAM_FUZZ_CASES` sets the cases per reader (default 5000) and
/// `SCCAM_FUZZ_SEED` the seed (default 2026), for a long run:
/// `SCCAM_FUZZ_CASES=200000 swift test --filter Fuzz`.
public struct Fuzzer {
    public struct Report: CustomStringConvertible {
        public let reader: String
        public let cases: Int
        public let rejected: Int
        public let slowestSeconds: Double
        /// Growth of the process's peak resident memory over the run.
        public let peakGrowthBytes: Int

        public var accepted: Int { cases - rejected }
        public var description: String {
            String(format: "fuzz %@: %d cases, %d rejected, %d accepted, slowest %.1f ms, peak memory +%d MB",
                   reader, cases, rejected, accepted, slowestSeconds * 1000, peakGrowthBytes >> 20)
        }
    }

    public static var casesPerReader: Int {
        ProcessInfo.processInfo.environment["SCCAM_FUZZ_CASES"].flatMap(Int.init) ?? 5000
    }
    public static var seed: UInt64 {
        ProcessInfo.processInfo.environment["SCCAM_FUZZ_SEED"].flatMap(UInt64.init) ?? 2026
    }

    private var generator: SeededGenerator

    public init(seed: UInt64 = Fuzzer.seed) { generator = SeededGenerator(seed: seed) }

    /// Integers that break careless length and size arithmetic.
    static let extremes: [UInt64] = [0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
                                     0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF,
                                     0x0000_0100_0000_0000]

    public mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &generator) }

    /// One malformed variant of `seeds` (chosen at random).
    public mutating func mutate(_ seeds: [[UInt8]]) -> [UInt8] {
        var bytes = seeds[int(0..<seeds.count)]
        guard !bytes.isEmpty else { return [UInt8(int(0..<256))] }
        // Most damage lands in the first 64 bytes, where the headers are.
        func position() -> Int { int(0..<2) == 0 ? int(0..<min(64, bytes.count)) : int(0..<bytes.count) }
        for _ in 0..<int(1..<4) {
            guard !bytes.isEmpty else { break }
            switch int(0..<8) {
            case 0:  // truncate
                bytes = Array(bytes.prefix(int(0..<bytes.count)))
            case 1:  // flip bits
                for _ in 0..<int(1..<9) { bytes[position()] ^= UInt8(1 << int(0..<8)) }
            case 2:  // overwrite a run with random bytes
                let start = position(), count = min(int(1..<17), bytes.count - start)
                for i in start..<(start + count) { bytes[i] = UInt8(int(0..<256)) }
            case 3:  // an extreme integer over a field, little- or big-endian
                let width = [1, 2, 4, 8][int(0..<4)], start = position()
                guard start + width <= bytes.count else { continue }
                let value = Self.extremes[int(0..<Self.extremes.count)]
                let bigEndian = int(0..<2) == 0
                for i in 0..<width {
                    let shift = UInt64(8 * (bigEndian ? width - 1 - i : i))
                    bytes[start + i] = UInt8((value >> shift) & 0xFF)
                }
            case 4:  // delete a run
                let start = position(), count = min(int(1..<65), bytes.count - start)
                bytes.removeSubrange(start..<(start + count))
            case 5:  // repeat a run
                let start = position(), count = min(int(1..<65), bytes.count - start)
                bytes.insert(contentsOf: bytes[start..<(start + count)], at: start)
            case 6:  // splice: the head of one seed, the tail of another
                let other = seeds[int(0..<seeds.count)]
                bytes = Array(bytes.prefix(int(0..<(bytes.count + 1)))) + Array(other.suffix(int(0..<(other.count + 1))))
            default:  // random garbage appended
                bytes += (0..<int(1..<129)).map { _ in UInt8(int(0..<256)) }
            }
        }
        return bytes
    }

    /// Runs `cases` inputs through `read`: every hostile case first, then
    /// mutations of the seeds. Returns what happened.
    public static func run(_ reader: String, seeds: [[UInt8]], hostile: [[UInt8]] = [], cases: Int = casesPerReader,
                           read: ([UInt8]) throws -> Void) -> Report {
        var fuzzer = Fuzzer(seed: seed ^ UInt64(truncatingIfNeeded: reader.hashValueStable))
        resetPeakMemory()
        let startPeak = peakResidentBytes()
        var rejected = 0
        var slowest = 0.0
        for index in 0..<cases {
            let input = index < hostile.count ? hostile[index] : fuzzer.mutate(seeds)
            let start = Date()
            do { try read(input) } catch { rejected += 1 }
            slowest = max(slowest, Date().timeIntervalSince(start))
        }
        return Report(reader: reader, cases: cases, rejected: rejected, slowestSeconds: slowest,
                      peakGrowthBytes: max(0, peakResidentBytes() - startPeak))
    }

    /// Linux's peak resident set (VmHWM), reset by writing 5 to clear_refs.
    static func resetPeakMemory() {
        if let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
            handle.write(Data("5".utf8))
            try? handle.close()
        }
    }

    static func peakResidentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kilobytes * 1024
    }
}

extension String {
    /// A hash that is the same in every run (Swift's own is seeded per process).
    var hashValueStable: UInt64 { utf8.reduce(14_695_981_039_346_656_037) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 } }
}
