import CFMAPeak
import Kernels
import Foundation

/// The machine's practical floating-point peak: every thread of this rank
/// runs a register-only multiply-add loop at the CPU's widest vector width at
/// once. Float32 kernels are measured against the FMA loop; bfloat16 kernels
/// against AVX512_BF16's dot product, which does twice the work per lane.
public enum FMAPeak {
    public enum Instruction: String, Sendable {
        /// Float32 fused multiply-add, 2 operations per lane.
        case fma = "FMA"
        /// VDPBF16PS: two bfloat16 products summed into a float32 lane, 4 operations per lane.
        case bf16DotProduct = "bf16 dot product"

        /// Whether this CPU runs the instruction.
        public var isAvailable: Bool { lanes > 0 }

        /// Float32 lanes per vector, 0 where the CPU lacks the instruction.
        public var lanes: Int {
            switch self {
            case .fma: return Int(sccam_fma_lanes())
            case .bf16DotProduct: return sccam_bf16_dot_available() != 0 ? 16 : 0
            }
        }

        var operationsPerLane: Int { self == .fma ? 2 : 4 }

        /// Runs the loop and returns the lane sum of each accumulator.
        /// Accumulator i starts at start[i]; FMA computes a * first + second,
        /// the dot product a + 2 * bf16(first) * bf16(second), per lane.
        public func run(iterations: Int, start: [Float], first: Float, second: Float) -> [Float] {
            precondition(start.count == Int(SCCAM_PEAK_ACCUMULATORS))
            var sums = [Float](repeating: 0, count: start.count)
            start.withUnsafeBufferPointer { start in
                sums.withUnsafeMutableBufferPointer { sums in
                    switch self {
                    case .fma: sccam_fma_loop(iterations, start.baseAddress, first, second, sums.baseAddress)
                    case .bf16DotProduct: sccam_bf16_dot_loop(iterations, start.baseAddress, first, second, sums.baseAddress)
                    }
                }
            }
            return sums
        }
    }

    public struct Measurement: Sendable {
        public let instruction: Instruction
        public let gflops: Double
        public let lanes: Int
        public let threads: Int
    }

    /// GFLOP/s of `threads` threads running the loop together for about `seconds`;
    /// 0 GFLOP/s where the CPU lacks the instruction.
    public static func measure(_ instruction: Instruction = .fma, threads: Int = Parallel.threadCount,
                               seconds: Double = 0.3) -> Measurement {
        let lanes = instruction.lanes
        guard lanes > 0 else { return Measurement(instruction: instruction, gflops: 0, lanes: 0, threads: threads) }
        let flopPerIteration = Double(Int(SCCAM_PEAK_ACCUMULATORS) * lanes * instruction.operationsPerLane)
        // Passed at run time, so the compiler cannot fold an accumulator away whatever the values.
        let start = (0..<Int(SCCAM_PEAK_ACCUMULATORS)).map { Float($0 + 1) / 10 }
        let (first, second): (Float, Float) = instruction == .fma ? (0.999, 0.001) : (0.5, 1.0 / 128)
        // Calibrate on one thread, then run the whole team for the requested time.
        var iterations = 1 << 20
        while true {
            let begin = DispatchTime.now().uptimeNanoseconds
            _ = instruction.run(iterations: iterations, start: start, first: first, second: second)
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
            if elapsed > 0.02 { iterations = max(1, Int(Double(iterations) * seconds / elapsed)); break }
            iterations *= 4
        }
        let rounds = iterations
        // Best of three: a shared VM can steal a core for part of one run.
        let best = (0..<3).map { _ -> Double in
            let begin = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: threads) { _ in
                _ = instruction.run(iterations: rounds, start: start, first: first, second: second)
            }
            return Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
        }.min()!
        return Measurement(instruction: instruction, gflops: flopPerIteration * Double(rounds) * Double(threads) / best / 1e9,
                           lanes: lanes, threads: threads)
    }
}
