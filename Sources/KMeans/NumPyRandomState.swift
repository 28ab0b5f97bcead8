/// NumPy's legacy `RandomState` (MT19937 with NumPy's integer seeding), for
/// the draws scikit-learn's k-means makes. The reference calls
/// `KMeans(random_state=0)`; drawing the same numbers in the same order lets
/// `--seed 0` seed the same centres as the reference does on the same
/// features, rather than just a statistically equivalent run.
public struct NumPyRandomState: Sendable {
    private var state = [UInt32](repeating: 0, count: 624)
    private var position = 624

    /// `numpy.random.RandomState(seed)` for an integer seed in 0 ..< 2³².
    public init(seed: UInt32) {
        var value = seed
        for i in 0..<624 {
            state[i] = value
            value = 1_812_433_253 &* (value ^ (value >> 30)) &+ UInt32(i + 1)
        }
    }

    /// The next raw 32-bit output.
    public mutating func nextUInt32() -> UInt32 {
        if position == 624 { regenerate() }
        var y = state[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// `random_sample()`, which `uniform()` also returns for [0, 1): 53 bits
    /// from two outputs.
    public mutating func randomSample() -> Double {
        let high = Double(nextUInt32() >> 5), low = Double(nextUInt32() >> 6)
        return (high * 67_108_864.0 + low) / 9_007_199_254_740_992.0
    }

    /// `choice(count, p=w / w.sum())` with float32 weights all equal, as
    /// scikit-learn ≥ 1.3 picks the first k-means++ centre. The cumulative
    /// float64 sum of the float32 probabilities is reproduced so the index
    /// matches NumPy's even at the rounding boundaries.
    public mutating func uniformChoice(count: Int) -> Int {
        let probability = Double(Float(1) / Float(count))
        let sample = randomSample()
        // NumPy: cdf = cumsum(p); cdf /= cdf[-1]; searchsorted(cdf, sample, side="right"),
        // i.e. the number of normalised partial sums <= sample (they only grow).
        var last = 0.0
        for _ in 0..<count { last += probability }
        var running = 0.0, below = 0
        while below < count {
            running += probability
            guard running / last <= sample else { break }
            below += 1
        }
        return min(below, count - 1)
    }

    private mutating func regenerate() {
        let upper: UInt32 = 0x8000_0000, lower: UInt32 = 0x7FFF_FFFF
        for i in 0..<624 {
            let y = (state[i] & upper) | (state[(i + 1) % 624] & lower)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : 0x9908_B0DF)
        }
        position = 0
    }
}
