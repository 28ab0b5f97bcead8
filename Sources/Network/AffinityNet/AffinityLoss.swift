import Foundation

/// psa's affinity loss (spec 9.3):
///
///     L = 1/4 sum(-bg_pos log(a + 1e-5)) / (count_bg + 1e-5)
///       + 1/4 sum(-fg_pos log(a + 1e-5)) / (count_fg + 1e-5)
///       + 1/2 sum(-neg log(1 + 1e-5 - a)) / (count_neg + 1e-5)
///
/// the sums and counts over the whole (global) batch.
public enum AffinityLoss {
    /// Pair labels of a batch, each [N, 34, P] of 0 and 1.
    public struct Labels: Sendable {
        public let batch: Int
        public let pairsPerImage: Int
        public let backgroundPositive: [Float]
        public let foregroundPositive: [Float]
        public let negative: [Float]

        public init(batch: Int, pairsPerImage: Int, backgroundPositive: [Float], foregroundPositive: [Float], negative: [Float]) {
            precondition([backgroundPositive, foregroundPositive, negative].allSatisfy { $0.count == batch * pairsPerImage })
            self.batch = batch
            self.pairsPerImage = pairsPerImage
            self.backgroundPositive = backgroundPositive
            self.foregroundPositive = foregroundPositive
            self.negative = negative
        }

        /// This batch's label counts.
        public var counts: Counts {
            Counts(background: backgroundPositive.reduce(0) { $0 + Double($1) },
                   foreground: foregroundPositive.reduce(0) { $0 + Double($1) },
                   negative: negative.reduce(0) { $0 + Double($1) })
        }
    }

    /// The three label counts the terms divide by (summed over ranks in data-parallel training).
    public struct Counts: Sendable, Equatable {
        public var background: Double
        public var foreground: Double
        public var negative: Double
        public init(background: Double, foreground: Double, negative: Double) {
            self.background = background
            self.foreground = foreground
            self.negative = negative
        }
        public var asArray: [Double] { [background, foreground, negative] }
    }

    /// The loss and its three terms (each before its 1/4, 1/4, 1/2 weight).
    public struct Value: Sendable {
        public let total: Double
        public let background: Double
        public let foreground: Double
        public let negative: Double
    }

    static let epsilon: Float = 1e-5

    /// True when the loss sits at its ceiling, -log(epsilon), on both positive parts
    /// (every affinity 0) or on the negative part (every affinity 1): the features have
    /// diverged, their gradients vanish, and the walk would learn nothing from them.
    public static func hasCollapsed(background: Double, foreground: Double, negative: Double) -> Bool {
        let nearCeiling = 0.99 * -log(Double(epsilon))
        return (background > nearCeiling && foreground > nearCeiling) || negative > nearCeiling
    }

    static func evaluate(affinities a: UnsafePointer<Float>, labels: Labels, counts: Counts) -> Value {
        var bg = 0.0, fg = 0.0, neg = 0.0
        for i in 0..<(labels.batch * labels.pairsPerImage) {
            let positive = -Double(logf(a[i] + epsilon)), negative = -Double(logf(1 + epsilon - a[i]))
            bg += Double(labels.backgroundPositive[i]) * positive
            fg += Double(labels.foregroundPositive[i]) * positive
            neg += Double(labels.negative[i]) * negative
        }
        let e = Double(epsilon)
        let background = bg / (counts.background + e), foreground = fg / (counts.foreground + e), negative = neg / (counts.negative + e)
        return Value(total: background / 4 + foreground / 4 + negative / 2, background: background, foreground: foreground, negative: negative)
    }

    /// d loss / d distance for every pair, where a = exp(-distance):
    /// d loss / d a times -a.
    static func distanceGradient(affinities a: UnsafePointer<Float>, labels: Labels, counts: Counts,
                                 into gradient: UnsafeMutablePointer<Float>) {
        let e = Double(epsilon)
        let wb = Float(0.25 / (counts.background + e)), wf = Float(0.25 / (counts.foreground + e)), wn = Float(0.5 / (counts.negative + e))
        for i in 0..<(labels.batch * labels.pairsPerImage) {
            let positive = -(labels.backgroundPositive[i] * wb + labels.foregroundPositive[i] * wf) / (a[i] + epsilon)
            let negative = labels.negative[i] * wn / (1 + epsilon - a[i])
            gradient[i] = -a[i] * (positive + negative)
        }
    }
}
