import Foundation

/// Wall-clock time per kind of work, for `sccam bench` with SCCAM_PROFILE=1.
/// The training loop's phases are recorded by the loop, the rest inside the network.
/// Only the thread that drives the network records (the parallel loops run
/// inside a recorded phase), so plain counters suffice.
public enum PhaseProfiler {
    public enum Phase: Int, CaseIterable, Sendable {
        case gemm, im2col, col2im, oneDNNConvolution, oneDNNReorder, oneDNNWeightReorder, winogradWeightTransform,
             winogradWeightGradientTransform, phaseTransforms,
             winogradTransforms, elementwise
        /// The training loop's own work around the network.
        case dataWait, exchangeWait, gradientCheck, optimizer

        public var name: String {
            switch self {
            case .gemm: return "sgemm"
            case .im2col: return "im2col"
            case .col2im: return "col2im"
            case .oneDNNConvolution: return "oneDNN convolution"
            case .oneDNNReorder: return "activation reorders"
            case .oneDNNWeightReorder: return "weight reorders"
            case .winogradWeightTransform: return "our Winograd, weights (U)"
            case .winogradWeightGradientTransform: return "our Winograd, dU to dW"
            case .phaseTransforms: return "dilation phases"
            case .winogradTransforms: return "our Winograd, activations"
            case .elementwise: return "BN/ReLU/dropout/pool"
            case .dataWait: return "waiting for data"
            case .exchangeWait: return "waiting for the allreduce"
            case .gradientCheck: return "finite-gradient check"
            case .optimizer: return "optimiser"
            }
        }
    }

    /// On with SCCAM_PROFILE=1, or from `enable()` (benchmarks that report phases).
    nonisolated(unsafe) public private(set) static var isEnabled = ProcessInfo.processInfo.environment["SCCAM_PROFILE"] == "1"

    /// Starts recording, for the rest of the process.
    public static func enable() { isEnabled = true }
    nonisolated(unsafe) private static var nanoseconds = [UInt64](repeating: 0, count: Phase.allCases.count)

    @inline(__always)
    public static func measure<Result>(_ phase: Phase, _ body: () throws -> Result) rethrows -> Result {
        guard isEnabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        defer { nanoseconds[phase.rawValue] += DispatchTime.now().uptimeNanoseconds - start }
        return try body()
    }

    public static func reset() { nanoseconds = [UInt64](repeating: 0, count: Phase.allCases.count) }

    public static var seconds: [(Phase, Double)] { Phase.allCases.map { ($0, Double(nanoseconds[$0.rawValue]) / 1e9) } }
}
