import Foundation

/// The 8-bit colour operations behind torchvision 0.2's ColorJitter, as
/// Pillow computes them: `ImageEnhance` blends, the RGB→L conversion, and the
/// RGB↔HSV conversions. All work in place on interleaved RGB bytes.
public enum PillowColor {
    /// Pillow's `Image.blend(degenerate, image, alpha)`: interpolation
    /// truncates to 8 bits; extrapolation (alpha outside [0, 1]) clips.
    @inline(__always)
    static func blend(_ degenerate: UInt8, _ value: UInt8, alpha: Float) -> UInt8 {
        let result = Float(Int(degenerate)) + alpha * Float(Int(value) - Int(degenerate))
        if alpha >= 0 && alpha <= 1 { return UInt8(result) }
        if result <= 0 { return 0 }
        if result >= 255 { return 255 }
        return UInt8(result)
    }

    /// RGB to L (luma), Pillow's fixed-point ITU-R 601-2 conversion, rounded.
    @inline(__always)
    static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        let weighted: Int = Int(r) * 19595 + Int(g) * 38470 + Int(b) * 7471
        return UInt8((weighted + 0x8000) >> 16)
    }

    /// `ImageEnhance.Brightness`: blend with black.
    public static func adjustBrightness(_ pixels: inout [UInt8], factor: Float) {
        for i in pixels.indices { pixels[i] = blend(0, pixels[i], alpha: factor) }
    }

    /// `ImageEnhance.Contrast`: blend with a grey image at the rounded mean luma.
    public static func adjustContrast(_ pixels: inout [UInt8], factor: Float) {
        let count = pixels.count / 3
        guard count > 0 else { return }
        var sum = 0
        for p in 0..<count { sum += Int(luma(pixels[3 * p], pixels[3 * p + 1], pixels[3 * p + 2])) }
        let mean = UInt8(Int(Double(sum) / Double(count) + 0.5))
        for i in pixels.indices { pixels[i] = blend(mean, pixels[i], alpha: factor) }
    }

    /// `ImageEnhance.Color`: blend with the image's own luma.
    public static func adjustSaturation(_ pixels: inout [UInt8], factor: Float) {
        for p in 0..<(pixels.count / 3) {
            let l = luma(pixels[3 * p], pixels[3 * p + 1], pixels[3 * p + 2])
            for c in 0..<3 { pixels[3 * p + c] = blend(l, pixels[3 * p + c], alpha: factor) }
        }
    }

    /// torchvision's `adjust_hue`: to HSV, add `shift` (an integer, -25...25
    /// for hue 0.1) to the 8-bit hue modulo 256, back to RGB.
    public static func shiftHue(_ pixels: inout [UInt8], by shift: Int) {
        let wrapped = UInt8(truncatingIfNeeded: shift)
        for p in 0..<(pixels.count / 3) {
            var (h, s, v) = rgbToHSV(pixels[3 * p], pixels[3 * p + 1], pixels[3 * p + 2])
            h = h &+ wrapped
            (pixels[3 * p], pixels[3 * p + 1], pixels[3 * p + 2]) = hsvToRGB(h, s, v)
        }
    }

    /// Pillow's rgb2hsv (Convert.c), float arithmetic as in C.
    static func rgbToHSV(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> (UInt8, UInt8, UInt8) {
        let maxc = max(r, g, b), minc = min(r, g, b)
        guard minc != maxc else { return (0, 0, maxc) }
        let cr = Float(maxc - minc)
        let s = cr / Float(maxc)
        let rc = Float(maxc - r) / cr, gc = Float(maxc - g) / cr, bc = Float(maxc - b) / cr
        var h: Float
        // C mixes float variables with double constants: 2.0 + rc - bc is double, stored to float.
        if r == maxc { h = bc - gc } else if g == maxc { h = Float(2.0 + Double(rc) - Double(bc)) }
        else { h = Float(4.0 + Double(gc) - Double(rc)) }
        // C: h = fmod((h / 6.0 + 1.0), 1.0) in double, stored to float.
        h = Float(fmod(Double(h) / 6.0 + 1.0, 1.0))
        return (clip8(Int(Double(h) * 255.0)), clip8(Int(Double(s) * 255.0)), maxc)
    }

    /// Pillow's hsv2rgb (Convert.c).
    static func hsvToRGB(_ h: UInt8, _ s: UInt8, _ v: UInt8) -> (UInt8, UInt8, UInt8) {
        guard s != 0 else { return (v, v, v) }
        let i = Int(floor(Double(Float(h)) * 6.0 / 255.0))
        let f = Float(Double(Float(h)) * 6.0 / 255.0 - Double(Float(i)))
        let fs = Float(Double(Float(s)) / 255.0)
        let fv = Double(Float(v))
        let p = clip8(Int((fv * (1.0 - Double(fs))).rounded(.toNearestOrAwayFromZero)))
        let q = clip8(Int((fv * (1.0 - Double(fs * f))).rounded(.toNearestOrAwayFromZero)))
        let t = clip8(Int((fv * (1.0 - Double(fs) * (1.0 - Double(f)))).rounded(.toNearestOrAwayFromZero)))
        switch i % 6 {
        case 0: return (v, t, p)
        case 1: return (q, v, p)
        case 2: return (p, v, t)
        case 3: return (p, q, v)
        case 4: return (t, p, v)
        default: return (v, p, q)
        }
    }

    @inline(__always)
    static func clip8(_ value: Int) -> UInt8 { value < 0 ? 0 : value > 255 ? 255 : UInt8(value) }
}
