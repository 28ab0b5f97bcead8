/// How one rank computes: its threads and how its networks run their
/// convolutions. A value, made once from the command line (or a test) and
/// given to every network when it is built; nothing reads it from a global.
public struct Compute: Equatable, Sendable, CustomStringConvertible {
    /// Which implementation runs the convolutions.
    public enum Implementation: String, Codable, CaseIterable, Sendable {
        /// oneDNN's primitives (the default).
        case onednn
        /// im2col + OpenBLAS sgemm: the plain float32 reference.
        case im2col
    }

    /// Compute threads of this rank (ours, OpenBLAS's and oneDNN's).
    public var threads: Int
    public var implementation: Implementation
    public var precision: ConvolutionPrecision
    public var algorithm: ConvolutionAlgorithm
    /// The fewest input and output channels a layer needs to run Winograd
    /// (tests lower it, to run the Winograd kernels on thin networks).
    public var winogradMinimumChannels: Int
    /// How oneDNN runs dilated layers: on their phase images (undilated kernels) or its dilated kernels.
    public var dilatedConvolutions: DilatedConvolutions

    public init(threads: Int = 1, implementation: Implementation = .onednn, precision: ConvolutionPrecision = .fp32,
                algorithm: ConvolutionAlgorithm = .winograd,
                winogradMinimumChannels: Int = ConvolutionAlgorithm.referenceWinogradMinimumChannels,
                dilatedConvolutions: DilatedConvolutions = .auto) {
        precondition(implementation == .onednn || precision == .fp32, "im2col computes in fp32 only")
        self.threads = max(1, threads)
        self.implementation = implementation
        self.precision = precision
        self.algorithm = algorithm
        self.winogradMinimumChannels = winogradMinimumChannels
        self.dilatedConvolutions = dilatedConvolutions
    }

    /// The convolution path of the reports: im2col, oneDNN fp32, oneDNN bf16.
    public var path: ConvolutionPath {
        implementation == .im2col ? .im2col : .oneDNN(precision)
    }

    /// The engine every convolution layer of a network built with this value calls.
    public var convolutionEngine: any ConvolutionEngine {
        switch implementation {
        case .im2col: return Im2colConvolutionEngine()
        case .onednn:
            return OneDNNConvolutionEngine(precision: precision, algorithm: algorithm, winogradMinimumChannels: winogradMinimumChannels,
                                           dilatedConvolutions: dilatedConvolutions)
        }
    }

    public var description: String { "\(convolutionEngine), \(threads) thread(s)" }

    /// Gives this process's thread pools (ours, OpenBLAS's, oneDNN's OpenMP)
    /// `threads` threads: they are the process's, not a network's, so a rank
    /// sets them once when it starts.
    public func startThreads() {
        Parallel.setThreadCount(threads)
    }
}
