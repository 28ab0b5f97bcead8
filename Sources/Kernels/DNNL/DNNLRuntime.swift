import CDNNL
import Foundation

/// How the convolutions of a network are computed.
public enum ConvolutionPath: Equatable, Sendable, CustomStringConvertible {
    /// im2col + OpenBLAS sgemm, one image at a time: the plain reference.
    case im2col
    /// oneDNN's convolution primitives, in the given precision.
    case oneDNN(ConvolutionPrecision)

    /// "im2col", "oneDNN fp32", "oneDNN bf16".
    public var shortName: String {
        switch self {
        case .im2col: return "im2col"
        case .oneDNN(let precision): return "oneDNN \(precision.rawValue)"
        }
    }

    public var description: String {
        switch self {
        case .im2col: return "im2col + sgemm (fp32)"
        case .oneDNN(.bf16) where !DNNLRuntime.hasNativeBFloat16: return "oneDNN bf16, emulated"
        case .oneDNN(let precision): return "oneDNN \(precision.rawValue)"
        }
    }
}

/// The number format of a convolution's inputs. bf16 rounds the activations
/// and weights to bfloat16 and accumulates in float32; outputs, gradients,
/// master weights and everything outside the convolutions stay float32.
public enum ConvolutionPrecision: String, CaseIterable, Codable, Sendable {
    case fp32, bf16
}

/// A oneDNN call that failed: which call, and oneDNN's status.
public struct DNNLError: Error, CustomStringConvertible {
    public let call: String
    public let status: dnnl_status_t

    public var description: String {
        let reason: String
        switch status {
        case dnnl_out_of_memory: reason = "out of memory"
        case dnnl_invalid_arguments: reason = "invalid arguments"
        case dnnl_unimplemented: reason = "not implemented for this shape, precision or CPU"
        default: reason = "status \(status.rawValue)"
        }
        return "oneDNN \(call) failed: \(reason)"
    }
}

/// oneDNN's process-wide state: the CPU engine and stream every primitive
/// runs on, its version, the instruction set it dispatches to, and the thread
/// count of its OpenMP runtime (kept equal to ours and OpenBLAS's).
public enum DNNLRuntime {
    static func check(_ status: dnnl_status_t, _ call: @autoclosure () -> String) throws {
        if status != dnnl_success { throw DNNLError(call: call(), status: status) }
    }

    /// A call that cannot fail for inputs this code builds (a failure is a bug, not bad input).
    static func require(_ status: dnnl_status_t, _ call: @autoclosure () -> String) {
        if status != dnnl_success { fatalError(DNNLError(call: call(), status: status).description) }
    }

    nonisolated(unsafe) static let engine: dnnl_engine_t = {
        var engine: dnnl_engine_t?
        require(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine_create")
        return engine!
    }()

    nonisolated(unsafe) static let stream: dnnl_stream_t = {
        var stream: dnnl_stream_t?
        require(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "stream_create")
        return stream!
    }()

    public static var version: String {
        let v = dnnl_version()!.pointee
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// The instruction set oneDNN's kernels use on this CPU, in oneDNN's own words.
    public static var instructionSet: String { name(of: dnnl_get_effective_cpu_isa()) }

    static func name(of isa: dnnl_cpu_isa_t) -> String {
        switch isa {
        case dnnl_cpu_isa_sse41: return "sse41"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx512_mic, dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx_bf16"
        default: return "isa 0x\(String(isa.rawValue, radix: 16))"
        }
    }

    /// Whether oneDNN dispatches to AMX tiles here (its bf16 then outruns
    /// any vector-register peak loop).
    public static var hasAMX: Bool { dnnl_get_effective_cpu_isa() == dnnl_cpu_isa_avx512_core_amx }

    nonisolated(unsafe) private static var configuredThreads = 1

    /// The OpenMP thread count oneDNN's primitives run with on this thread,
    /// as GNU OpenMP itself reports it.
    public static var threadCount: Int {
        applyThreadCount()
        return Int(omp_get_max_threads())
    }

    /// GNU OpenMP keeps the count per calling thread, so it is set again on
    /// whichever thread executes a primitive (`applyThreadCount`).
    static func setThreadCount(_ count: Int) {
        let count = max(1, count)
        if count != configuredThreads {
            // A primitive splits its work for the thread count it was created
            // under, and keeps that split: one made for 1 thread runs on 1 of 2.
            DNNLConvolution.discardPlans()
            BatchedMatmul.discardPlans()
        }
        configuredThreads = count
        omp_set_num_threads(Int32(configuredThreads))
    }

    @inline(__always)
    static func applyThreadCount() {
        if Int(omp_get_max_threads()) != configuredThreads { omp_set_num_threads(Int32(configuredThreads)) }
    }

    /// Whether oneDNN has bfloat16 convolution kernels on this CPU. oneDNN 2.6
    /// needs AVX-512: native on AVX512-BF16 and AMX processors, emulated by
    /// oneDNN itself on plain AVX-512. Elsewhere (AVX2) `--precision bf16` is
    /// emulated here: float32 kernels on operands rounded to bfloat16, which
    /// gives bf16's numbers (not its speed) so that results agree across a
    /// cluster's machines.
    public static let hasNativeBFloat16: Bool = {
        let geometry = DNNLConvolution.Plan.Geometry(strides: [1, 1], dilates: [0, 0], paddingLeft: [1, 1], paddingRight: [1, 1])
        guard let descriptor = try? DNNLConvolution.Plan.forwardDescriptor(
            geometry, source: [1, 16, 8, 8], weights: [16, 16, 3, 3], output: [1, 16, 8, 8], bias: nil, low: dnnl_bf16) else { return false }
        dnnl_primitive_desc_destroy(descriptor)
        return true
    }()

    /// Whether oneDNN has Winograd convolution kernels on this CPU (oneDNN
    /// 2.6: float32 on AVX-512 only).
    public static let hasWinograd: Bool = {
        let geometry = DNNLConvolution.Plan.Geometry(strides: [1, 1], dilates: [0, 0], paddingLeft: [1, 1], paddingRight: [1, 1])
        guard let descriptor = try? DNNLConvolution.Plan.forwardDescriptor(
            geometry, source: [1, 64, 8, 8], weights: [64, 64, 3, 3], output: [1, 64, 8, 8], bias: nil, low: dnnl_f32,
            algorithm: .winograd) else { return false }
        defer { dnnl_primitive_desc_destroy(descriptor) }
        return DNNLConvolution.Plan.implementation(of: descriptor).contains("wino")
    }()

    /// Whether float32 3x3 layers have a Winograd kernel here: oneDNN's
    /// (AVX-512) or ours (`WinogradConvolution`, AVX2).
    public static var hasFloat32Winograd: Bool { hasWinograd || WinogradConvolution.runsFloat32Here }

    /// What `--convolution-algorithm` does here, in a few words.
    public static var winogradMode: String {
        (hasWinograd ? "Winograd on 3x3 stride-1 float32 layers (\(instructionSet))"
            : WinogradConvolution.runsFloat32Here
            ? "Winograd on 3x3 stride-1 float32 layers (ours, F(4x4, 3x3) on oneDNN's float32 matmul; oneDNN has none for \(instructionSet))"
            : "no Winograd kernels for \(instructionSet); direct everywhere")
            + (WinogradConvolution.winsOnThisCPU ? " and bf16 ones (ours, F(2x2, 3x3) on oneDNN's bf16 matmul)" : "")
    }

    /// How bf16 runs here, in a few words.
    public static var bfloat16Mode: String {
        hasNativeBFloat16 ? "native (\(instructionSet))" : "emulated (float32 \(instructionSet) kernels on bf16-rounded operands; no speed-up)"
    }

    public static func report(engine: any ConvolutionEngine) -> String {
        "oneDNN \(version), dispatching to \(instructionSet), \(threadCount) OpenMP thread(s); "
            + "bf16 convolutions \(bfloat16Mode); \(winogradMode); networks use \(engine)"
    }
}
