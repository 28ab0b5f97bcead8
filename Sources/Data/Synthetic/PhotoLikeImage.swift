import Formats
import Kernels

/// Images with the statistics of photographs where it matters for speed:
/// smooth shading plus texture and noise, so that JPEG decoding does real
/// entropy-decoding work (a flat image would decode unrealistically fast).
public enum PhotoLikeImage {
    public static func make(width: Int, height: Int, seed: UInt64) -> RGBImage {
        let random = CounterRandom(seed: seed)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let fx = 2 + random.uniform(1, 0, 0, 0) * 6, fy = 2 + random.uniform(2, 0, 0, 0) * 6
        for y in 0..<height {
            for x in 0..<width {
                let u = Double(x) / Double(width), v = Double(y) / Double(height)
                let noise = random.uniform(3, UInt64(y), UInt64(x), 0) * 40 - 20
                let base = 128 + 60 * ((u * fx).truncatingRemainder(dividingBy: 1) - 0.5) + 50 * ((v * fy).truncatingRemainder(dividingBy: 1) - 0.5)
                for c in 0..<3 {
                    let value = base + noise + Double(c) * 25 * u - 12
                    pixels[3 * (y * width + x) + c] = UInt8(max(0, min(255, value)))
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
