import Kernels

/// A handle to one tensor of a `ParameterStore`.
public struct ParameterID: Hashable, Sendable {
    public let index: Int
}

/// Every tensor of a model in one flat Float buffer, laid out in the
/// reference's state-dict order with the reference's key names, and a twin
/// flat buffer holding the gradients of the trainable tensors only, in the
/// same relative order.
///
/// One buffer makes a checkpoint one write and an allreduce a few contiguous
/// slices: backward finishes the tail of the network first, so the tail of
/// the gradient buffer can be reduced while earlier layers still compute.
public final class ParameterStore: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public let count: Int
        /// Offset in the gradient buffer; nil for frozen tensors.
        public let gradientOffset: Int?
        public var isTrainable: Bool { gradientOffset != nil }
    }

    /// Collects the tensors of a model before the store is allocated.
    public struct Layout {
        public private(set) var entries: [Entry] = []
        private var valueCount = 0
        private var gradientCount = 0

        public init() {}

        public mutating func add(_ name: String, shape: [Int], trainable: Bool) -> ParameterID {
            precondition(!entries.contains { $0.name == name }, "duplicate parameter \(name)")
            let count = shape.reduce(1, *)
            entries.append(Entry(name: name, shape: shape, offset: valueCount, count: count,
                                 gradientOffset: trainable ? gradientCount : nil))
            valueCount += count
            if trainable { gradientCount += count }
            return ParameterID(index: entries.count - 1)
        }

        var totals: (values: Int, gradients: Int) { (valueCount, gradientCount) }
    }

    public let entries: [Entry]
    public let values: UnsafeMutableBufferPointer<Float>
    public let gradients: UnsafeMutableBufferPointer<Float>
    private let indexByName: [String: Int]

    public init(layout: Layout) {
        entries = layout.entries
        let totals = layout.totals
        values = .allocate(capacity: totals.values)
        values.initialize(repeating: 0)
        gradients = .allocate(capacity: totals.gradients)
        gradients.initialize(repeating: 0)
        indexByName = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    deinit {
        values.deallocate()
        gradients.deallocate()
    }

    public var parameterCount: Int { values.count }
    public var trainableCount: Int { gradients.count }

    public func id(_ name: String) -> ParameterID? { indexByName[name].map(ParameterID.init) }
    public func entry(_ id: ParameterID) -> Entry { entries[id.index] }
    public func entry(named name: String) -> Entry? { indexByName[name].map { entries[$0] } }

    @inline(__always)
    public func pointer(_ id: ParameterID) -> UnsafeMutablePointer<Float> {
        values.baseAddress! + entries[id.index].offset
    }

    @inline(__always)
    public func gradientPointer(_ id: ParameterID) -> UnsafeMutablePointer<Float> {
        guard let offset = entries[id.index].gradientOffset else {
            preconditionFailure("\(entries[id.index].name) is frozen and has no gradient")
        }
        return gradients.baseAddress! + offset
    }

    public func view(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        entry(named: name).map { UnsafeMutableBufferPointer(start: values.baseAddress! + $0.offset, count: $0.count) }
    }

    public func gradientView(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard let entry = entry(named: name), let offset = entry.gradientOffset else { return nil }
        return UnsafeMutableBufferPointer(start: gradients.baseAddress! + offset, count: entry.count)
    }

    public func zeroGradients() { gradients.update(repeating: 0) }
}
