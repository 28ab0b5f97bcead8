import Kernels

/// He-uniform initialisation, U(-b, b) with b = scale * sqrt(6 / fan_in), for
/// networks trained from scratch (the demo, benchmarks, tests).
enum HeUniform {
    /// One counter-keyed start per layer, then a sequential SplitMix64 stream:
    /// the same values whatever the thread or rank, and fast.
    static func fill(_ weight: UnsafeMutablePointer<Float>, count: Int, fanIn: Int, scale: Double, seed: UInt64, layer: Int) {
        let bound = (6.0 / Double(fanIn)).squareRoot() * scale
        var state = UInt64(CounterRandom(seed: seed).uniform(0x434F_4E56, UInt64(layer), 0, 0) * 0x1p53)
        for i in 0..<count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            weight[i] = Float((2 * (Double(z >> 11) * 0x1p-53) - 1) * bound)
        }
    }
}

extension BatchNormLayer {
    /// Identity statistics: weight 1, bias 0, mean 0, variance 1.
    func resetToIdentity(_ store: ParameterStore) {
        store.pointer(weight).update(repeating: 1, count: channels)
        store.pointer(bias).update(repeating: 0, count: channels)
        store.pointer(runningMean).update(repeating: 0, count: channels)
        store.pointer(runningVariance).update(repeating: 1, count: channels)
    }
}
