import Distributed
import Foundation
import Kernels

/// The training step phase by phase at several thread counts, interleaved
/// round by round in one process (`TrainingBenchmark`'s real loop), beside
/// three references measured at the same counts in the same rounds: the FMA
/// peak (what compute-bound work can gain), the memory triad (what a pass
/// streaming from memory can gain) and a pass that only writes (what a pass
/// bound by its stores can gain: our Winograd weight transform writes four
/// floats of U for every weight). The question it answers: which phases
/// fail to speed up with threads, and whether the machine or the code holds
/// them back.
public enum ThreadScalingBenchmark {
    /// One step time, per phase and overall, at one thread count in one round.
    public struct Sample: Sendable {
        public let threads: Int
        public let secondsPerStep: Double
        /// Rank 0's seconds per step in each profiled phase.
        public let phaseSeconds: [PhaseProfiler.Phase: Double]
        /// The step's seconds outside every profiled phase.
        public let unprofiledSeconds: Double
        public let triadGBPerSecond: Double
        /// Write-only bandwidth (`MemoryBandwidth.writes`).
        public let writeGBPerSecond: Double
        public let fmaGFLOPS: Double
    }

    public struct Report: Sendable {
        public let counts: [Int]
        /// samples[round][i] ran at counts[i].
        public let samples: [[Sample]]

        /// The best of the rounds at each count: the smallest time, or with `largest` the largest rate.
        func best(_ value: (Sample) -> Double, largest: Bool = false) -> [Double] {
            counts.indices.map { i in
                let values = samples.map { value($0[i]) }
                return largest ? values.max()! : values.min()!
            }
        }
    }

    public static func run(counts: [Int], rounds: Int, globalBatch: Int, steps: Int, widthDivisor: Int, cropSize: Int,
                           compute: Compute, folder: String, communicator: Communicator,
                           progress: (String) -> Void) throws -> Report {
        precondition(counts.count >= 2 && counts.allSatisfy { $0 >= 1 } && rounds >= 1)
        PhaseProfiler.enable()
        let restore = Parallel.threadCount
        defer { Parallel.setThreadCount(restore) }
        let memory = MemoryBandwidth()
        var samples: [[Sample]] = []
        for round in 1...rounds {
            var row: [Sample] = []
            for threads in counts {
                var here = compute
                here.threads = threads
                here.startThreads()
                let triad = memory.triad(), writes = memory.writes()
                let fma = FMAPeak.measure(.fma, threads: threads, seconds: 0.3).gflops
                let result = try TrainingBenchmark.run(globalBatch: globalBatch, steps: steps, widthDivisor: widthDivisor,
                                                       cropSize: cropSize, compute: here, folder: folder, communicator: communicator)
                var phases: [PhaseProfiler.Phase: Double] = [:]
                for (phase, seconds) in result.phaseSecondsPerStep { phases[phase] = seconds }
                let sample = Sample(threads: threads, secondsPerStep: result.secondsPerStep, phaseSeconds: phases,
                                    unprofiledSeconds: max(0, result.secondsPerStep - phases.values.reduce(0, +)),
                                    triadGBPerSecond: triad, writeGBPerSecond: writes, fmaGFLOPS: fma)
                progress(String(format: "round %d/%d, %d thread(s): %.2f s/step, memory triad %.1f GB/s, writes %.1f GB/s, FMA peak %.0f GFLOP/s",
                                round, rounds, threads, sample.secondsPerStep, triad, writes, fma))
                row.append(sample)
            }
            samples.append(row)
        }
        return Report(counts: counts, samples: samples)
    }
}

extension ThreadScalingBenchmark.Report {
    /// The table: each phase's best time per step at every count, its speed-up
    /// from the first count to the last (best against best, and the range of
    /// the rounds' own ratios), and its share of the step at the last count.
    /// Phases under a millisecond per step at every count are left out.
    public func lines() -> [String] {
        let first = counts[0], last = counts[counts.count - 1]
        let step = best { $0.secondsPerStep }
        func cells(_ values: [String]) -> String { values.map { String(repeating: " ", count: max(1, 12 - $0.count)) + $0 }.joined() }
        func name(_ text: String) -> String { text.padding(toLength: 28, withPad: " ", startingAt: 0) }
        var lines = ["per step, best of \(samples.count) round(s) at each count; speed-up from \(first) to \(last) thread(s) "
                     + "(best against best, and each round's own); share of the step at \(last)",
                     name("phase") + cells(counts.map { "\($0) thr" } + ["speed-up", "rounds", "share"])]
        func row(_ label: String, _ value: (ThreadScalingBenchmark.Sample) -> Double, unit: String = "s", isRate: Bool = false) {
            let values = best(value, largest: isRate)
            // A time speeds up by first / last, a rate by last / first.
            func ratio(_ a: Double, _ b: Double) -> Double { isRate ? b / max(a, 1e-12) : a / max(b, 1e-12) }
            let rounds = samples.map { ratio(value($0[0]), value($0[$0.count - 1])) }
            lines.append(name(label) + cells(values.map { String(format: isRate ? "%.1f %@" : "%.3f %@", $0, unit) }
                                             + [String(format: "%.2fx", ratio(values[0], values[values.count - 1])),
                                                String(format: "%.2f-%.2fx", rounds.min()!, rounds.max()!),
                                                isRate ? "" : String(format: "%.1f%%", 100 * values[values.count - 1] / step[step.count - 1])]))
        }
        row("the step", { $0.secondsPerStep })
        let phases = PhaseProfiler.Phase.allCases.filter { phase in samples.joined().contains { ($0.phaseSeconds[phase] ?? 0) >= 0.001 } }
        for phase in phases { row(phase.name, { $0.phaseSeconds[phase] ?? 0 }) }
        row("the rest (unprofiled)", { $0.unprofiledSeconds })
        row("machine: memory triad", { $0.triadGBPerSecond }, unit: "GB/s", isRate: true)
        row("machine: memory writes", { $0.writeGBPerSecond }, unit: "GB/s", isRate: true)
        row("machine: FMA peak", { $0.fmaGFLOPS }, unit: "GF/s", isRate: true)
        return lines
    }
}
