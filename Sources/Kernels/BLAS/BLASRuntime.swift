import CBLAS
import Foundation

/// OpenBLAS's process-wide state: which kernel family ("core") it runs, and
/// how many threads it uses.
public enum BLASRuntime {
    /// The name of the kernel family OpenBLAS chose (or was told) at load time.
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// OpenBLAS's build configuration string (version, DYNAMIC_ARCH, ...).
    public static var configuration: String {
        String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces)
    }

    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    public static func setThreadCount(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    /// The widest SIMD family an OpenBLAS core name's kernels use.
    public static func vectorLevel(ofCore name: String) -> VectorLevel {
        switch name.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return .avx512
        case "haswell", "zen", "excavator": return .avx2
        case "sandybridge", "bulldozer", "piledriver", "steamroller": return .avx
        default: return .sse
        }
    }

    /// The OpenBLAS core to ask for on a CPU, or nil when SSE kernels are all it has.
    public static func preferredCore(for cpu: CPUFeatures) -> String? {
        switch cpu.vectorLevel {
        case .avx512: return "SkylakeX"
        case .avx2: return cpu.isAMD ? "Zen" : "Haswell"
        case .avx: return cpu.isAMD ? "Bulldozer" : "Sandybridge"
        case .sse: return nil
        }
    }
}

/// Makes OpenBLAS use the kernels this CPU deserves.
///
/// OpenBLAS 0.3.21 misdetects some recent CPUs as a generic SSE3 core and runs
/// about 5x slower. It reads `OPENBLAS_CORETYPE` in its library constructor,
/// before `main`, so setting the variable from inside the process is too late:
/// the only fix is to re-execute the program once with it set. This must run
/// before MPI is initialised (the process keeps its PID, so an MPI launcher
/// never notices) and before any BLAS call.
public enum BLASCoreSelection {
    /// Set on the re-executed process so that it never loops, and so `sccam env`
    /// can report what was done.
    public static let markerVariable = "SCCAM_BLAS_CORE_FIXED_FROM"
    /// Test hook: treat a given `OPENBLAS_CORETYPE` as if OpenBLAS had picked it
    /// by itself, to exercise the re-execution on CPUs that OpenBLAS detects well.
    public static let simulateVariable = "SCCAM_SIMULATE_MISDETECTED_BLAS_CORE"

    public enum Decision: Equatable, Sendable {
        case keep(reason: String)
        case reexecute(core: String, misdetected: String)
    }

    public static func decide(environment: [String: String], currentCore: String, cpu: CPUFeatures) -> Decision {
        if let from = environment[markerVariable] {
            return .keep(reason: "re-executed with OPENBLAS_CORETYPE=\(currentCore) (OpenBLAS had picked \(from))")
        }
        if let user = environment["OPENBLAS_CORETYPE"], environment[simulateVariable] != "1" {
            return .keep(reason: "OPENBLAS_CORETYPE=\(user) set by the user")
        }
        guard let preferred = BLASRuntime.preferredCore(for: cpu),
              BLASRuntime.vectorLevel(ofCore: currentCore) < cpu.vectorLevel else {
            return .keep(reason: "detected by OpenBLAS, matches the CPU's \(cpu.vectorLevel)")
        }
        return .reexecute(core: preferred, misdetected: currentCore)
    }

    /// Re-executes the current program with a better core when OpenBLAS chose
    /// badly; returns (having changed nothing) otherwise or if exec fails.
    public static func ensureBestCore() {
        let environment = ProcessInfo.processInfo.environment
        let decision = decide(environment: environment, currentCore: BLASRuntime.coreName, cpu: CPUFeatures.current())
        guard case .reexecute(let core, let misdetected) = decision else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(markerVariable, misdetected, 1)
        unsetenv(simulateVariable)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Only reached when exec failed: carry on with the slow kernels, loudly.
        let reason = String(cString: strerror(errno))
        FileHandle.standardError.write(Data("""
            sccam: warning: OpenBLAS runs its \(misdetected) kernels on a CPU with \(CPUFeatures.current().vectorLevel); \
            re-executing with OPENBLAS_CORETYPE=\(core) failed (\(reason)). Set OPENBLAS_CORETYPE=\(core) yourself.

            """.utf8))
    }

    /// One line for `sccam env`: the core in use and how it was chosen.
    public static func report() -> String {
        let environment = ProcessInfo.processInfo.environment
        let decision = decide(environment: environment, currentCore: BLASRuntime.coreName, cpu: CPUFeatures.current())
        switch decision {
        case .keep(let reason): return "\(BLASRuntime.coreName) (\(reason))"
        case .reexecute(let core, _): return "\(BLASRuntime.coreName) (slow: this CPU deserves \(core))"
        }
    }
}
