/// How an activation (or its gradient) lies in memory between two layers.
///
/// Our own code reads NCHW. oneDNN's AVX-512 kernels read and write
/// nChw16c, so every tensor that passes only between convolutions and the
/// per-channel passes in between (BatchNorm, ReLU, channel dropout) is kept
/// blocked: no reorder is spent on it at either end. Tensors the rest of the
/// network reads (block boundaries, taps, heads) stay plain.
public enum ActivationLayout: Hashable, Sendable {
    /// NCHW.
    case plain
    /// nChw16c (oneDNN's aBcd16b): N x C/16 x H x W x 16, the 16 channels of
    /// a block innermost. Only for channel counts that are multiples of 16.
    case blocked16

    /// Where element (n, c, i) of an N x C x plane tensor sits (i = y W + x).
    @inline(__always)
    public func offset(image n: Int, channel c: Int, pixel i: Int, channels: Int, plane: Int) -> Int {
        switch self {
        case .plain: return (n * channels + c) * plane + i
        case .blocked16: return ((n * channels + (c & ~15)) * plane + i * 16) + (c & 15)
        }
    }

    /// The layout a tensor of `channels` channels can take when every layer
    /// that reads or writes it can exchange blocked tensors.
    public static func shared(channels: Int, allBlocked: Bool) -> ActivationLayout {
        allBlocked && channels % 16 == 0 ? .blocked16 : .plain
    }

    /// Copies an N x C x plane tensor from one layout into another (tests,
    /// and the few readers that want NCHW from a blocked tensor).
    public static func convert(_ source: UnsafePointer<Float>, from: ActivationLayout, into target: UnsafeMutablePointer<Float>,
                               to: ActivationLayout, batch: Int, channels: Int, plane: Int) {
        for n in 0..<batch {
            for c in 0..<channels {
                for i in 0..<plane {
                    target[to.offset(image: n, channel: c, pixel: i, channels: channels, plane: plane)] =
                        source[from.offset(image: n, channel: c, pixel: i, channels: channels, plane: plane)]
                }
            }
        }
    }
}

/// The layouts of a convolution's two sides: its input (and the input's
/// gradient) and its output (and the output's gradient).
public struct ConvolutionLayouts: Hashable, Sendable {
    public var input: ActivationLayout
    public var output: ActivationLayout

    public init(input: ActivationLayout = .plain, output: ActivationLayout = .plain) {
        self.input = input
        self.output = output
    }

    public static let plain = ConvolutionLayouts()
}
