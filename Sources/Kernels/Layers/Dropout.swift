import CBlockedCopy
import Foundation

/// A counter-based random source: the same key always gives the same number,
/// whatever rank, thread or order asks. Dropout masks are keyed by
/// (seed, step, global sample index, layer, channel), so a run on 2 ranks
/// draws exactly the masks a run on 1 rank draws.
public struct CounterRandom: Sendable, Equatable {
    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        // SplitMix64's finaliser: a bijection with full avalanche.
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform number in [0, 1) for the given key.
    @inline(__always)
    public func uniform(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) -> Double {
        var h = Self.mix(seed)
        h = Self.mix(h ^ a)
        h = Self.mix(h ^ b)
        h = Self.mix(h ^ c)
        h = Self.mix(h ^ d)
        return Double(h >> 11) * 0x1p-53
    }

    /// A standard normal number for the given key (Box-Muller on two keyed uniforms).
    public func normal(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) -> Double {
        let u1 = 1 - uniform(a, b, c, d &* 2), u2 = uniform(a, b, c, d &* 2 &+ 1)
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

/// Where in training a dropout mask is drawn: which step, and which samples of
/// the global batch this rank holds.
public struct DropoutContext: Sendable, Equatable {
    public let random: CounterRandom
    public let step: Int
    /// The global index (within the whole step's batch) of this rank's first sample.
    public let firstSampleIndex: Int

    public init(random: CounterRandom, step: Int, firstSampleIndex: Int) {
        self.random = random
        self.step = step
        self.firstSampleIndex = firstSampleIndex
    }
}

/// Channel dropout (PyTorch's Dropout2d): each (sample, channel) plane is
/// zeroed with probability p, and kept planes are scaled by 1/(1-p).
public enum ChannelDropout {
    /// Draws the per-(sample, channel) multipliers: 0 or 1/(1-p).
    public static func drawMask(probability p: Double, context: DropoutContext, layer: Int,
                                batch: Int, channels: Int, mask: UnsafeMutablePointer<Float>) {
        let keep = Float(1 / (1 - p))
        for n in 0..<batch {
            let sample = UInt64(context.firstSampleIndex + n)
            for c in 0..<channels {
                let u = context.random.uniform(UInt64(context.step), sample, UInt64(layer), UInt64(c))
                mask[n * channels + c] = u < p ? 0 : keep
            }
        }
    }

    /// Multiplies each plane by its mask value, in place (forward and backward alike).
    public static func apply(mask: UnsafePointer<Float>, to values: UnsafeMutablePointer<Float>,
                             batch: Int, channels: Int, plane: Int, layout: ActivationLayout = .plain) {
        if layout != .plain {
            return applyBlocked(mask: mask, to: values, batch: batch, channels: channels, plane: plane, layout: layout)
        }
        PhaseProfiler.measure(.elementwise) { Parallel.forEach(batch * channels, minimumChunk: max(1, 16_384 / max(1, plane))) { index in
            multiply(values + index * plane, count: plane, by: mask[index])
        } }
    }

    /// One plane times its mask value, in place: zeroed where the value is 0.
    @inlinable
    public static func multiply(_ values: UnsafeMutablePointer<Float>, count: Int, by value: Float) {
        if value == 0 {
            values.update(repeating: 0, count: count)
        } else {
            for i in 0..<count { values[i] *= value }
        }
    }

    /// The same on nChw16c or nChw8c, a 16-channel slab at a time (`sccam_dropout_slab`).
    private static func applyBlocked(mask: UnsafePointer<Float>, to values: UnsafeMutablePointer<Float>,
                                     batch: Int, channels: Int, plane: Int, layout: ActivationLayout) {
        precondition(channels % 16 == 0, "blocked dropout needs channels in whole slabs of 16, not \(channels)")
        FrozenBatchNorm.forEachSlab(batch: batch, channels: channels, plane: plane) { slab, n, c in
            sccam_dropout_slab(values + slab, layout.channelBlock, mask + n * channels + c, plane)
        }
    }
}
