import Foundation

/// How many threads one rank should compute with.
///
/// mpirun binds each rank to a single core when it starts 2 or fewer ranks,
/// and OpenBLAS then quietly uses 1 thread; with `--bind-to none` every rank
/// sees every core and would oversubscribe them. So the count is always chosen
/// explicitly: the user's word first, else the cores this rank may run on,
/// shared fairly with the other ranks of the node when the rank is not bound.
public enum ThreadPolicy {
    /// The cores this process may run on (its affinity mask, as the kernel
    /// reports it in /proc/self/status; Glibc's sched_getaffinity is not
    /// visible to Swift without _GNU_SOURCE).
    public static func coresInAffinityMask() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else {
            return onlineCores()
        }
        let hex = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
        let count = hex.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
        return count > 0 ? count : onlineCores()
    }

    public static func onlineCores() -> Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    public struct Choice: Sendable {
        public let count: Int
        public let reason: String
    }

    /// - Parameters:
    ///   - requested: an explicit `--threads` value, if given.
    ///   - ranksOnThisNode: how many ranks of the job share this machine.
    public static func choose(requested: Int?, ranksOnThisNode: Int,
                              environment: [String: String] = ProcessInfo.processInfo.environment) -> Choice {
        if let requested, requested > 0 {
            return Choice(count: requested, reason: "--threads")
        }
        for name in ["SCCAM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"] {
            if let value = environment[name].flatMap({ Int($0) }), value > 0 {
                return Choice(count: value, reason: name)
            }
        }
        let mask = coresInAffinityMask()
        let online = onlineCores()
        if mask < online {
            return Choice(count: mask, reason: """
                bound to \(mask) of \(online) cores by the launcher (mpirun binds 1 core per rank when np <= 2; \
                use --bind-to none or --map-by ...:pe=N to give a rank more)
                """)
        }
        let share = max(1, online / max(1, ranksOnThisNode))
        return Choice(count: share, reason: "\(online) cores shared by \(ranksOnThisNode) rank(s) on this node")
    }
}
