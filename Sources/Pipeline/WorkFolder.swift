import Distributed
import Formats
import Foundation

/// What every stage does to its work folder before it starts: remove the
/// temporary files a killed writer left behind, and check that all ranks see
/// the same folder (rank 0 writes every output; the others read them back).
public enum WorkFolder {
    public struct SharingError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Prepares `path` for a stage on every rank of `communicator`; returns
    /// how many stale temporaries rank 0 removed (0 on the other ranks).
    @discardableResult
    public static func prepare(_ path: String, communicator: Communicator) throws -> Int {
        var removed = 0
        var failure = ""
        if communicator.isRoot {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                removed = removeStaleTemporaries(in: path)
            } catch {
                failure = "cannot create the work folder \(path): \(error.localizedDescription)"
            }
        }
        failure = try communicator.broadcast(string: failure, root: 0)
        guard failure.isEmpty else { throw SharingError(description: failure) }
        if communicator.size > 1 { try checkShared(path, communicator: communicator) }
        return removed
    }

    /// A temporary name of `AtomicFile`: `.NAME.tmp-PID-RANDOM`.
    static func temporaryOwner(_ name: String) -> pid_t? {
        guard name.hasPrefix("."), let marker = name.range(of: ".tmp-", options: .backwards) else { return nil }
        let parts = name[marker.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let pid = pid_t(parts[0]), UInt32(parts[1]) != nil else { return nil }
        return pid
    }

    /// Removes, anywhere under `path`, the temporaries of writers that no
    /// longer run on this host (a live process's are left alone: it may be
    /// another job writing there right now).
    static func removeStaleTemporaries(in path: String) -> Int {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        var removed = 0
        while let relative = walker.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            guard let pid = temporaryOwner(name) else { continue }
            let owner = kill(pid, 0)
            if pid == getpid() || (owner != 0 && errno == ESRCH) {
                if unlink("\(path)/\(relative)") == 0 { removed += 1 }
            }
        }
        return removed
    }

    /// Rank 0 writes a token into the folder; every rank must read it back.
    static func checkShared(_ path: String, communicator: Communicator) throws {
        let host = ProcessInfo.processInfo.hostName
        var tokenPath = "", token = ""
        if communicator.isRoot {
            token = "\(host) \(getpid()) \(UInt64.random(in: 0...UInt64.max))"
            tokenPath = "\(path)/.sccam-shared-check-\(getpid())"
            do { try AtomicFile.write(token + "\n", to: tokenPath) } catch { token = "" }
        }
        let announced = try communicator.broadcast(string: "\(tokenPath)\n\(token)", root: 0).split(separator: "\n", omittingEmptySubsequences: false)
        tokenPath = String(announced[0])
        token = String(announced.count > 1 ? announced[1] : "")
        var verdict = ""
        if token.isEmpty {
            verdict = communicator.isRoot ? "rank 0 on \(host) cannot write into \(path)" : ""
        } else {
            switch (try? AtomicFile.read(tokenPath)).map({ String(decoding: $0, as: UTF8.self) }) {
            case token + "\n": verdict = ""
            case nil: verdict = "rank \(communicator.rank) on \(host) does not see \(tokenPath), which rank 0 wrote"
            default: verdict = "rank \(communicator.rank) on \(host) reads another file at \(tokenPath) than the one rank 0 wrote"
            }
        }
        let verdicts = try communicator.allgather(string: verdict).filter { !$0.isEmpty }
        try communicator.barrier()
        if communicator.isRoot && !tokenPath.isEmpty { unlink(tokenPath) }
        guard verdicts.isEmpty else {
            throw SharingError(description: """
                the work folder \(path) is not shared by all ranks: \(verdicts.joined(separator: "; ")). \
                Rank 0 writes every output there and the other ranks read them back, so every node must see the same \
                folder: put --work on a file system all nodes mount (NFS, Lustre, GPFS, BeeGFS), not on a node-local \
                disk such as /tmp
                """)
        }
    }
}
