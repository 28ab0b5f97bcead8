import CBLAS
import CDNNL
import Foundation

/// Row-major single-precision matrix multiply on raw buffers:
/// `C[m x n] = alpha * op(A) * op(B) + beta * C`, where op(A) is m x k and
/// op(B) is k x n. Leading dimensions are the row strides of the stored matrices.
@inline(__always)
public func sgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    PhaseProfiler.measure(.gemm) {
        cblas_sgemm(CblasRowMajor,
                    transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }
}

public enum GEMMProbe {
    /// Measures square sgemm throughput for about `seconds`, after one warm-up
    /// call, on the calling rank with OpenBLAS's current thread count.
    public static func measure(size n: Int = 2048, seconds: Double = 1.0) -> (gflops: Double, calls: Int) {
        let count = n * n
        let a = UnsafeMutablePointer<Float>.allocate(capacity: count)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: count)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<count {
            a[i] = Float(i % 17) * 0.01
            b[i] = Float(i % 13) * 0.01
            c[i] = 0
        }
        let run = { sgemm(transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1,
                          a: a, lda: n, b: b, ldb: n, beta: 0, c: c, ldc: n) }
        run()
        var calls = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        repeat {
            run()
            calls += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        } while elapsed < seconds
        return (2.0 * Double(n) * Double(n) * Double(n) * Double(calls) / elapsed / 1e9, calls)
    }
}

/// The same product on oneDNN's sgemm (row-major), which runs on the OpenMP
/// team that oneDNN's primitives and our loops share. Kernels called between
/// oneDNN primitives use it: OpenBLAS's own threads would spin after each
/// call while that team works, on cores the team needs (measured on DeepLab's
/// step: OpenBLAS in the ASPP made its sgemm and the element-wise passes
/// 1.4x slower on 2 cores).
@inline(__always)
public func teamSGEMM(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    PhaseProfiler.measure(.gemm) {
        DNNLRuntime.applyThreadCount()
        let (no, yes) = (CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "T")))
        DNNLRuntime.require(dnnl_sgemm(transposeA ? yes : no, transposeB ? yes : no, dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k),
                                       alpha, a, dnnl_dim_t(lda), b, dnnl_dim_t(ldb), beta, c, dnnl_dim_t(ldc)),
                            "dnnl_sgemm \(m)x\(n)x\(k)")
    }
}
