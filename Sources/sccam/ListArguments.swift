/// Comma-separated values on the command line ("1,0.5,1.5,2", "256,512",
/// "30,40,50"). An entry that does not parse rejects the whole list rather
/// than being dropped.
enum ListArguments {
    static func values<Value: LosslessStringConvertible>(_ text: String) -> [Value]? {
        let values = text.split(separator: ",").map { Value(String($0).trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
        return values.map { $0! }
    }

    /// Positive scales.
    static func scales(_ text: String) -> [Double]? {
        guard let scales: [Double] = values(text), scales.allSatisfy({ $0 > 0 }) else { return nil }
        return scales
    }

    /// "min,max" sizes in pixels, smallest first.
    static func sizeRange(_ text: String) -> ClosedRange<Int>? {
        guard let sizes: [Int] = values(text), sizes.count == 2, sizes[0] >= 1, sizes[0] <= sizes[1] else { return nil }
        return sizes[0]...sizes[1]
    }
}
