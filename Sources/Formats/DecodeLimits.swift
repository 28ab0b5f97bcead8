/// Bounds every reader of outside bytes applies before it allocates, so a
/// corrupt or hostile header (a 1 TB tensor, a 10^6 x 10^6 image) is an error
/// rather than an allocation that takes the machine down.
public enum DecodeLimits {
    /// The largest image decoded: 2^27 pixels (16384 x 8192; 384 MB as RGB).
    /// PASCAL VOC's are 500 x 375.
    public static let maximumImagePixels = 1 << 27

    /// Deflate's largest possible expansion (1032:1): a PNG whose header
    /// claims more pixel data than its bytes can inflate to is corrupt.
    public static let deflateExpansion = 1032

    /// The element count of `shape`, or nil when a dimension is negative or
    /// the product overflows.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }

    /// The byte count of `shape` with `elementSize`-byte elements, or nil as above.
    public static func byteCount(_ shape: [Int], elementSize: Int) -> Int? {
        guard let count = elementCount(shape) else { return nil }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: elementSize)
        return overflow ? nil : bytes
    }

    /// Checks an image header's size against the pixel limit.
    static func checkImage(width: Int, height: Int, path: String) throws {
        guard width > 0, height > 0 else { throw FormatError(path: path, "image has an empty size \(width)x\(height)") }
        guard width <= maximumImagePixels / height else {
            throw FormatError(path: path, "image header claims \(width)x\(height) pixels, more than the \(maximumImagePixels) this reader accepts (corrupt file?)")
        }
    }
}
