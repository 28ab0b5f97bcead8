import CBlockedCopy

/// How an activation (or its gradient) lies in memory between two layers.
///
/// Our own code reads NCHW. oneDNN's kernels read and write blocked layouts
/// (nChw16c on AVX-512, nChw8c on AVX2), so every tensor that passes only
/// between convolutions and the per-channel passes in between (BatchNorm,
/// ReLU, channel dropout) is kept in the blocked layout of this CPU's kernels
/// (`blocked`): no reorder is spent on it at either end. Tensors the rest of
/// the network reads (block boundaries, taps, heads) stay plain.
public enum ActivationLayout: Hashable, Sendable {
    /// NCHW.
    case plain
    /// nChw16c (oneDNN's aBcd16b): N x C/16 x H x W x 16, the 16 channels of
    /// a block innermost. Only for channel counts that are multiples of 16.
    case blocked16
    /// nChw8c (oneDNN's aBcd8b), the layout of its AVX2 kernels: N x C/8 x H x
    /// W x 8. Only for channel counts that are multiples of 16 too, so that
    /// our passes see whole 16-channel slabs (two blocks) in every layout.
    case blocked8

    /// Channels per block, 0 for plain: the `blocked` argument of the C kernels.
    public var channelBlock: Int32 {
        switch self {
        case .plain: return 0
        case .blocked16: return 16
        case .blocked8: return 8
        }
    }

    /// The blocked layout oneDNN's kernels use here: nChw16c where it
    /// dispatches to AVX-512, nChw8c below (its AVX2 and SSE4.1 kernels; also
    /// on an AVX-512 CPU held to AVX2 by ONEDNN_MAX_CPU_ISA). Exchanging the
    /// other one cost DeepLab-v2 0.29 s of reorders per step on Zen 3.
    public static let blocked: ActivationLayout = DNNLRuntime.instructionSet.hasPrefix("avx512") ? .blocked16 : .blocked8

    /// Where element (n, c, i) of an N x C x plane tensor sits (i = y W + x).
    @inline(__always)
    public func offset(image n: Int, channel c: Int, pixel i: Int, channels: Int, plane: Int) -> Int {
        switch self {
        case .plain: return (n * channels + c) * plane + i
        case .blocked16: return ((n * channels + (c & ~15)) * plane + i * 16) + (c & 15)
        case .blocked8: return ((n * channels + (c & ~7)) * plane + i * 8) + (c & 7)
        }
    }

    /// The layout a tensor of `channels` channels can take when every layer
    /// that reads or writes it can exchange blocked tensors.
    public static func shared(channels: Int, allBlocked: Bool) -> ActivationLayout {
        allBlocked && channels % 16 == 0 ? blocked : .plain
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

extension ActivationLayout {
    /// target (+)= source for one image of `channels` x `plane`, each in its
    /// layout: what a kernel that reads NCHW only does at its edges. It is
    /// the BatchNorm gradient's pass at scale 1, so the values are copied
    /// exactly (a blocked16 side crossed by 16 x 16 transposes in registers on AVX-512).
    public static func relayout(_ source: UnsafePointer<Float>, from: ActivationLayout, into target: UnsafeMutablePointer<Float>,
                                to: ActivationLayout, channels: Int, plane: Int, accumulate: Bool) {
        precondition((from == .plain && to == .plain) || channels % 16 == 0, "blocked tensors hold whole blocks of 16 channels")
        PhaseProfiler.measure(.oneDNNReorder) {
            Parallel.forEach(channels / 16 + (channels % 16 == 0 ? 0 : 1)) { block in
                let first = block * 16, count = min(16, channels - first)
                if count == 16 {
                    unitScale.withUnsafeBufferPointer { ones in
                        sccam_affine_gradient_slab(nil, source + first * plane, from.channelBlock, target + first * plane,
                                                   to.channelBlock, ones.baseAddress!, plane, accumulate ? 1 : 0)
                    }
                } else if accumulate {
                    for i in 0..<(count * plane) { target[first * plane + i] += source[first * plane + i] }
                } else {
                    (target + first * plane).update(from: source + first * plane, count: count * plane)
                }
            }
        }
    }

    private static let unitScale = [Float](repeating: 1, count: 16)
}
