import Formats

/// The reference's multi-scale inference views (spec 6.1).
public struct InferenceView: Sendable {
    public let scale: Double
    public let flipped: Bool
    public let width: Int
    public let height: Int
    /// Normalised [3, height, width].
    public let tensor: [Float]
}

public enum InferenceViews {
    public static let referenceScales: [Double] = [1.0, 0.5, 1.5, 2.0]

    /// The size of the view at `scale`: each side rounded half to even.
    public static func size(width: Int, height: Int, scale: Double) -> (width: Int, height: Int) {
        (max(1, Int((Double(width) * scale).rounded(.toNearestOrEven))),
         max(1, Int((Double(height) * scale).rounded(.toNearestOrEven))))
    }

    /// `[s1, s1 flipped, s0.5, s0.5 flipped, ...]`: view i is flipped iff i is odd.
    public static func make(_ image: RGBImage, scales: [Double] = referenceScales, flips: Bool = true) -> [InferenceView] {
        var views: [InferenceView] = []
        for scale in scales {
            let (w, h) = size(width: image.width, height: image.height, scale: scale)
            let resized = BicubicResize.resize(image, width: w, height: h)
            for flipped in flips ? [false, true] : [false] {
                views.append(InferenceView(scale: scale, flipped: flipped, width: w, height: h,
                                           tensor: Normalization.chw(resized, flipped: flipped)))
            }
        }
        return views
    }

    /// The feature-extraction view: scale 1, not flipped, native size.
    public static func extraction(_ image: RGBImage) -> [Float] { Normalization.chw(image) }
}
