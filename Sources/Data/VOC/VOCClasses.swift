/// The 20 PASCAL VOC object classes in the reference's order: class c is
/// value c + 1 in label maps (0 = background, 255 = ignore).
public enum VOCClasses {
    public static let names = [
        "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    ]
    public static let count = 20
    public static let background: UInt8 = 0
    public static let ignore: UInt8 = 255

    public static func index(of name: String) -> Int? { names.firstIndex(of: name) }
}
