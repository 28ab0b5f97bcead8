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
        /// How the gradient lies there: OIHW, or the convolution engine's blocked layout.
        public internal(set) var gradientLayout: WeightGradientLayout = .plain
        /// The convolution this tensor is the weight of, if it is one that a convolution engine computes.
        public internal(set) var convolution: ConvolutionGeometry?
        public var isTrainable: Bool { gradientOffset != nil }
    }

    /// Collects the tensors of a model before the store is allocated.
    public struct Layout {
        public private(set) var entries: [Entry] = []
        private var valueCount = 0
        private var gradientCount = 0

        public init() {}

        /// A convolution's OIHW weight, whose gradient the convolution engine
        /// writes in its own layout (`ParameterStore.useGradientLayouts(of:)`).
        public mutating func addConvolutionWeight(_ name: String, geometry g: ConvolutionGeometry, trainable: Bool) -> ParameterID {
            let id = add(name, shape: [g.outputChannels, g.inputChannels, g.kernel, g.kernel], trainable: trainable)
            entries[id.index].convolution = g
            return id
        }

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

    public private(set) var entries: [Entry]
    public let values: UnsafeMutableBufferPointer<Float>
    public let gradients: UnsafeMutableBufferPointer<Float>
    private let indexByName: [String: Int]

    public init(layout: Layout) {
        entries = layout.entries
        let totals = layout.totals
        values = Self.allocateAligned(totals.values)
        gradients = Self.allocateAligned(totals.gradients)
        indexByName = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    deinit {
        UnsafeMutableRawPointer(values.baseAddress!).deallocate()
        UnsafeMutableRawPointer(gradients.baseAddress!).deallocate()
    }

    /// Zeros on a 64-byte boundary: where a convolution engine's kernels may
    /// write a gradient with aligned stores (`ConvolutionEngine.weightGradientLayout`).
    private static func allocateAligned(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: HugePages.zeroed(count, as: Float.self), count: count)
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

    /// A tensor's gradient in the tensor's own (OIHW) order, whatever its layout in the buffer.
    public func plainGradient(_ name: String) -> [Float]? {
        guard let entry = entry(named: name), let view = gradientView(name) else { return nil }
        return entry.gradientLayout.plain(UnsafeBufferPointer(view), shape: entry.shape)
    }

    /// The gradient as stored, in `entry.gradientLayout`.
    public func gradientView(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard let entry = entry(named: name), let offset = entry.gradientOffset else { return nil }
        return UnsafeMutableBufferPointer(start: gradients.baseAddress! + offset, count: entry.count)
    }

    /// Records how `engine` writes each convolution's weight gradient; a
    /// network calls it whenever its engine changes (the gradient buffer's
    /// contents are then stale until the next backward pass rewrites them).
    public func useGradientLayouts(of engine: any ConvolutionEngine) {
        for index in entries.indices {
            guard entries[index].isTrainable, let g = entries[index].convolution else { continue }
            let gradient = gradients.baseAddress! + entries[index].gradientOffset!
            entries[index].gradientLayout = engine.weightGradientLayout(g, gradient: gradient)
        }
    }

    public func zeroGradients() { gradients.update(repeating: 0) }
}
