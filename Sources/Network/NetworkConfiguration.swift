/// Which SC-CAM classifier to build.
public struct NetworkConfiguration: Sendable, Equatable, Codable {
    /// The 20 PASCAL VOC object classes: the reference's.
    public static let vocClasses = 20
    /// Width divisors the architecture supports (every channel count stays an integer).
    public static let widthDivisors = [1, 2, 4, 8, 16, 32, 64]

    /// 1 builds the real ResNet-38 (64..4096 channels); 16 divides every
    /// backbone channel count by 16, as the golden files and the demo do.
    public var widthDivisor: Int
    /// 0: the baseline classifier with one 20-class head `fc8`. 1 and later:
    /// the SC-CAM classifier with heads `fc8_20` and `fc8_200` (20*k outputs).
    public var round: Int
    /// k, the number of sub-categories per parent class.
    public var subcategoriesPerClass: Int
    /// The parent classes: the dataset's (VOC 20, COCO 80).
    public var classes: Int

    public init(widthDivisor: Int = 1, round: Int = 1, subcategoriesPerClass: Int = 10, classes: Int = NetworkConfiguration.vocClasses) {
        precondition(Self.widthDivisors.contains(widthDivisor), "width divisor must be a power of two up to 64")
        precondition(round >= 0 && subcategoriesPerClass >= 1 && classes >= 1)
        self.widthDivisor = widthDivisor
        self.round = round
        self.subcategoriesPerClass = subcategoriesPerClass
        self.classes = classes
    }

    public var hasSubcategoryHead: Bool { round >= 1 }
    public var subcategoryClasses: Int { classes * subcategoriesPerClass }
    /// The pooled feature's length: 4096 / widthDivisor.
    public var featureChannels: Int { 4096 / widthDivisor }
}
