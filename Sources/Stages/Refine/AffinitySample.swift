import Data
import Formats
import Network

/// One AffinityNet training sample as psa's `VOC12AffDataset` makes it (spec
/// 9.2), in its order: colour jitter on the image; a joint random crop of the
/// image and the two CRF score stacks (before normalisation: the image's
/// padding is black, the scores' 0); the image normalised; a joint horizontal
/// flip; the scores mean-pooled over 8 x 8 blocks; the label map of the pooled
/// stacks; the pair labels of that map.
public struct AffinitySample {
    /// [3, crop, crop], normalised.
    public let image: [Float]
    /// [crop / 8, crop / 8] label map: stack positions, 255 uncertain.
    public let labels: [UInt8]
    /// [34][pairs] each, displacement-major.
    public let backgroundPositive: [Float]
    public let foregroundPositive: [Float]
    public let negative: [Float]

    /// Colour jitter as the classifier's (0.3, 0.3, 0.3, 0.1), and the crop size (psa: 448, a multiple of 8).
    public static func make(image: RGBImage, scores: [Float], channels: Int, augmentation: TrainingAugmentation,
                            random: inout SampleRandom) -> AffinitySample {
        let (w, h) = (image.width, image.height), plane = w * h, size = augmentation.cropSize
        precondition(size % 8 == 0, "the crop must be a multiple of 8")
        precondition(scores.count == 2 * channels * plane, "scores must be [2, \(channels), \(h), \(w)]")
        // 1. Colour jitter.
        var pixels = image.pixels
        augmentation.jitterColors(&pixels, random: &random)
        // 2. The joint crop, before normalisation.
        let (containerLeft, imageLeft, containerTop, imageTop) = augmentation.cropPlacement(width: w, height: h, random: &random)
        let copyWidth = min(size, w), copyHeight = min(size, h)
        var cropped = RGBImage(width: size, height: size)
        var croppedScores = [Float](repeating: 0, count: 2 * channels * size * size)
        for y in 0..<copyHeight {
            for x in 0..<copyWidth {
                let source = (imageTop + y) * w + imageLeft + x, target = (containerTop + y) * size + containerLeft + x
                for c in 0..<3 { cropped.pixels[3 * target + c] = pixels[3 * source + c] }
                for k in 0..<(2 * channels) { croppedScores[k * size * size + target] = scores[k * plane + source] }
            }
        }
        // 3. Flip both with probability 0.5, then normalise; pool the scores.
        let flipped = random.unit() < 0.5
        let tensor = Normalization.chw(cropped, flipped: flipped)
        let grid = size / 8
        var pooled = [Float](repeating: 0, count: 2 * channels * grid * grid)
        for k in 0..<(2 * channels) {
            for y in 0..<size {
                for x in 0..<size {
                    let sourceX = flipped ? size - 1 - x : x
                    pooled[(k * grid + y / 8) * grid + x / 8] += croppedScores[(k * size + y) * size + sourceX]
                }
            }
        }
        for i in pooled.indices { pooled[i] /= 64 }
        let cells = channels * grid * grid
        let labels = pooled.withUnsafeBufferPointer { p in
            AffinityLabels.labelMap(low: p.baseAddress!, high: p.baseAddress! + cells, channels: channels, height: grid, width: grid)
        }
        let pairs = AffinityLabels.pairs(labels: labels, height: grid, width: grid)
        return AffinitySample(image: tensor, labels: labels, backgroundPositive: pairs.backgroundPositive.flatMap { $0 },
                              foregroundPositive: pairs.foregroundPositive.flatMap { $0 }, negative: pairs.negative.flatMap { $0 })
    }
}
