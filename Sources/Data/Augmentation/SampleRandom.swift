import Kernels

/// The random draws of one training sample, a pure function of (seed, epoch,
/// global sample index): the same sample gets the same augmentation whichever
/// rank or thread prepares it.
public struct SampleRandom {
    private let random: CounterRandom
    private let epoch: UInt64
    private let sample: UInt64
    private var draw: UInt64 = 0

    public init(seed: UInt64, epoch: Int, sampleIndex: Int) {
        random = CounterRandom(seed: seed)
        self.epoch = UInt64(epoch)
        sample = UInt64(sampleIndex)
    }

    /// Uniform in [0, 1), like Python's random.random().
    public mutating func unit() -> Double {
        draw += 1
        return random.uniform(0x4155_4731, epoch, sample, draw)
    }

    /// Uniform in [a, b], like Python's random.uniform(a, b).
    public mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * unit() }

    /// Uniform integer in the closed range, like Python's random.randint.
    public mutating func integer(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + min(range.count - 1, Int(unit() * Double(range.count)))
    }

    public mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) {
            values.swapAt(i, integer(in: 0...i))
        }
    }
}
