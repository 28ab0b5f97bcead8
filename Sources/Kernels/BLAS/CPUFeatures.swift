import Foundation

/// The widest SIMD family a CPU offers (for picking BLAS kernels), in
/// increasing order of width.
public enum VectorLevel: Int, Comparable, Sendable, CustomStringConvertible {
    case sse = 0, avx, avx2, avx512

    public static func < (lhs: VectorLevel, rhs: VectorLevel) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .sse: return "SSE"
        case .avx: return "AVX"
        case .avx2: return "AVX2+FMA"
        case .avx512: return "AVX-512"
        }
    }
}

/// What this CPU can do, read from /proc/cpuinfo (the kernel's view, which
/// also reflects what a hypervisor chose to expose).
public struct CPUFeatures: Sendable {
    public let vendor: String
    public let modelName: String
    public let flags: Set<String>

    public init(vendor: String, modelName: String, flags: Set<String>) {
        self.vendor = vendor
        self.modelName = modelName
        self.flags = flags
    }

    /// The first processor's entry of /proc/cpuinfo; empty when unreadable
    /// (then nothing is "fixed", which is the safe default).
    public static func current() -> CPUFeatures {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else {
            return CPUFeatures(vendor: "unknown", modelName: "unknown", flags: [])
        }
        return parse(cpuinfo: text)
    }

    public static func parse(cpuinfo text: String) -> CPUFeatures {
        var vendor = "unknown", model = "unknown"
        var flags: Set<String> = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            if key == "vendor_id", vendor == "unknown" { vendor = value }
            if key == "model name", model == "unknown" { model = value }
            if key == "flags", flags.isEmpty { flags = Set(value.split(separator: " ").map(String.init)) }
        }
        return CPUFeatures(vendor: vendor, modelName: model, flags: flags)
    }

    public var vectorLevel: VectorLevel {
        // OpenBLAS's SkylakeX kernels use the F, BW, DQ and VL subsets.
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return .avx512 }
        if flags.contains("avx2") && flags.contains("fma") { return .avx2 }
        if flags.contains("avx") { return .avx }
        return .sse
    }

    public var isAMD: Bool { vendor == "AuthenticAMD" || vendor == "HygonGenuine" }
}
