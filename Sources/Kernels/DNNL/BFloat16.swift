/// bfloat16 as float32 with the low 16 bits of the significand cleared.
public enum BFloat16 {
    /// Rounds every value to the nearest bfloat16 (ties to even), in place:
    /// what a float32 → bf16 conversion keeps, still stored as float32.
    public static func round(_ values: UnsafeMutablePointer<Float>, count: Int) {
        let bits = UnsafeMutableRawPointer(values).assumingMemoryBound(to: UInt32.self)
        Parallel.forRanges(count, minimumChunk: 1 << 16) { range in
            for i in range {
                let b = bits[i]
                bits[i] = (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000
            }
        }
    }

    public static func rounded(_ value: Float) -> Float {
        let b = value.bitPattern
        return Float(bitPattern: (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000)
    }
}
