import Foundation

/// ELU with alpha 1: y = x for x > 0, else exp(x) - 1.
enum ELU {
    static func forward(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count where x[i] <= 0 { x[i] = expm1f(x[i]) }
    }

    /// dx = dy * (y > 0 ? 1 : y + 1), from the output y (y > 0 exactly when x > 0).
    static func backward(output y: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count where y[i] <= 0 { gradient[i] *= y[i] + 1 }
    }
}
