import ArgumentParser

/// Comma-separated values on the command line ("1,0.5,1.5,2", "256,512",
/// "30,40,50"). An entry that does not parse rejects the whole list rather
/// than being dropped.
enum ListArguments {
    static func values<Value: LosslessStringConvertible>(_ text: String) -> [Value]? {
        let values = text.split(separator: ",").map { Value(String($0).trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
        return values.map { $0! }
    }

    /// Positive scales, e.g. 1,0.5,1.5,2.
    struct Scales: ExpressibleByArgument {
        let values: [Double]
        init?(argument: String) {
            guard let values: [Double] = ListArguments.values(argument), values.allSatisfy({ $0 > 0 }) else { return nil }
            self.values = values
        }
    }

    /// "min,max" sizes in pixels, smallest first, e.g. 256,512.
    struct SizeRange: ExpressibleByArgument {
        let sizes: [Int]
        init?(argument: String) {
            guard let sizes: [Int] = ListArguments.values(argument), sizes.count == 2, sizes[0] >= 1, sizes[0] <= sizes[1] else { return nil }
            self.sizes = sizes
        }
    }

    /// Epoch numbers or other non-negative integers, e.g. 30,40,50.
    struct Integers: ExpressibleByArgument {
        let values: [Int]
        init?(argument: String) {
            guard let values: [Int] = ListArguments.values(argument), values.allSatisfy({ $0 >= 0 }) else { return nil }
            self.values = values
        }
    }
}
