import Kernels

/// Which DeepLab-v2 to build (deeplab-v2.md sections 1 and 3).
public struct DeepLabConfiguration: Sendable, Equatable, Codable {
    /// 1 builds the real ResNet-101 (64..2048 channels); 16 divides every
    /// backbone channel count by 16, as the golden files do.
    public var widthDivisor: Int
    /// 21 for VOC: background and the 20 object classes.
    public var classes: Int
    /// The MSC wrapper's extra input scales, after scale 1 (the reference: 0.5, 0.75).
    public var scales: [Double]
    /// How the MSC inputs are resized: PyTorch <= 1.5's in/out ratio (the
    /// reference's results) or >= 1.6's 1/scale.
    public var inputResize: BilinearResize.Rule

    public static let referenceScales = [0.5, 0.75]

    public init(widthDivisor: Int = 1, classes: Int = 21, scales: [Double] = DeepLabConfiguration.referenceScales,
                inputResize: BilinearResize.Rule = .sizeRatio) {
        precondition([1, 2, 4, 8, 16, 32].contains(widthDivisor), "width divisor must be a power of two up to 32")
        precondition(classes >= 2 && scales.allSatisfy { $0 > 0 && $0 < 1 })
        self.widthDivisor = widthDivisor
        self.classes = classes
        self.scales = scales
        self.inputResize = inputResize
    }

    /// The input size of an MSC branch: floor(n * scale).
    public static func scaledExtent(_ n: Int, scale: Double) -> Int { Int((Double(n) * scale).rounded(.down)) }
}
