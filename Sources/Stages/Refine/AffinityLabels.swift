import Network

/// psa's affinity labels (spec 9.2): a label map from the two CRF score
/// stacks of an image on a pooled grid, and the pixel-pair labels within
/// radius 5 that AffinityNet learns from.
public enum AffinityLabels {
    /// Uncertain pixels and padding.
    public static let ignore: UInt8 = 255
    public static let radius = PairGeometry.radius

    /// The 34 displacements of radius 5, in psa's order (`PairGeometry`).
    public static var displacements: [(dy: Int, dx: Int)] { PairGeometry.displacements }

    /// The label map of spec 9.2 from the low-alpha (`la`) and high-alpha
    /// (`ha`) score stacks, each [channels][height][width] with background
    /// first: the `la` argmax; uncertain (255) where it is background;
    /// background (0) where the `ha` argmax is; 255 where every score of both
    /// stacks is below 1e-5 (padding). Values are stack positions, not VOC ids.
    public static func labelMap(low: UnsafePointer<Float>, high: UnsafePointer<Float>, channels: Int,
                                height: Int, width: Int) -> [UInt8] {
        let n = height * width
        var labels = [UInt8](repeating: 0, count: n)
        for i in 0..<n {
            // argmax takes the first of equal maxima, as NumPy does.
            func argmax(_ stack: UnsafePointer<Float>) -> (index: Int, value: Float) {
                var best = 0, value = stack[i]
                for c in 1..<max(1, channels) where stack[c * n + i] > value {
                    best = c
                    value = stack[c * n + i]
                }
                return (best, value)
            }
            let (lowLabel, lowMax) = argmax(low), (highLabel, highMax) = argmax(high)
            var label = lowLabel == 0 ? ignore : UInt8(lowLabel)
            if highLabel == 0 { label = 0 }
            if max(lowMax, highMax) < 1e-5 { label = ignore }
            labels[i] = label
        }
        return labels
    }

    /// Pair labels over the 34 displacements, each [34][pairs], displacement-major.
    public struct Pairs: Sendable {
        /// "From" pixels: rows 0..<h-4, columns 4..<w-4, row-major.
        public let from: [Int]
        /// "To" pixel of each displacement and from pixel: [34][from.count].
        public let to: [[Int]]
        /// Both background.
        public let backgroundPositive: [[Float]]
        /// The same non-background label, both certain.
        public let foregroundPositive: [[Float]]
        /// Different labels, both certain.
        public let negative: [[Float]]
    }

    /// psa's `ExtractAffinityLabelInRadius` on a `height` x `width` label map.
    public static func pairs(labels: [UInt8], height: Int, width: Int) -> Pairs {
        precondition(labels.count == height * width)
        let geometry = PairGeometry(height: height, width: width)
        let from = geometry.from, count = from.count
        var to: [[Int]] = [], background: [[Float]] = [], foreground: [[Float]] = [], negative: [[Float]] = []
        for d in displacements.indices {
            let targets = Array(geometry.targets[(d * count)..<((d + 1) * count)])
            to.append(targets)
            var bg = [Float](repeating: 0, count: from.count), fg = bg, neg = bg
            for (k, (a, b)) in zip(from, targets).enumerated() {
                let labelFrom = labels[a], labelTo = labels[b]
                let valid = labelFrom < ignore && labelTo < ignore
                if labelFrom == labelTo {
                    if labelFrom == 0 { bg[k] = 1 } else if valid { fg[k] = 1 }
                } else if valid {
                    neg[k] = 1
                }
            }
            background.append(bg)
            foreground.append(fg)
            negative.append(neg)
        }
        return Pairs(from: from, to: to, backgroundPositive: background, foregroundPositive: foreground, negative: negative)
    }
}
