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
    public static func prepare(_ layout: WorkLayout, communicator: Communicator) throws -> Int {
        let path = layout.root
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
        if communicator.size > 1 { try checkShared(WorkLayout(resolved(path)), given: path, communicator: communicator) }
        return removed
    }

    /// Removes again, once a stage is done, the temporaries of writers that
    /// have ended since it started: a writer of a killed job may still be
    /// dying when the next run prepares the folder. Returns rank 0's count.
    @discardableResult
    public static func sweep(_ layout: WorkLayout, communicator: Communicator) throws -> Int {
        try communicator.barrier()
        return communicator.isRoot ? removeStaleTemporaries(in: layout.root) : 0
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
                if unlink(ImageFolder(path).member(relative)) == 0 { removed += 1 }
            }
        }
        return removed
    }

    /// Rank 0 writes a token into its folder; every rank must read it back from
    /// its own. A rank that finds it only under rank 0's path was given another
    /// folder on the same file system; one that finds it nowhere does not share
    /// the file system.
    static func checkShared(_ layout: WorkLayout, given path: String, communicator: Communicator) throws {
        let host = ProcessInfo.processInfo.hostName
        let folder = layout.root
        struct Token: Codable {
            var name = "", text = "", folder = ""
        }
        var written: Token?
        if communicator.isRoot {
            var token = Token(name: (layout.sharedCheckToken(pid: getpid()) as NSString).lastPathComponent, text: "\(host) \(getpid()) \(UInt64.random(in: 0...UInt64.max))",
                              folder: folder)
            do { try AtomicFile.write(token.text + "\n", to: ImageFolder(folder).member(token.name)) } catch { token.text = "" }
            written = token
        }
        let announced = try communicator.broadcast(written, root: 0)
        let name = announced.name, token = announced.text, rootFolder = announced.folder
        func holdsToken(_ folder: String) -> Bool {
            (try? AtomicFile.read(ImageFolder(folder).member(name))).map { String(decoding: $0, as: UTF8.self) } == token + "\n"
        }
        var verdict = "", otherFolder = ""
        if token.isEmpty {
            verdict = communicator.isRoot ? "rank 0 on \(host) cannot write into \(folder)" : ""
        } else if !holdsToken(folder) {
            if holdsToken(rootFolder) {
                otherFolder = "rank \(communicator.rank) on \(host) works in \(folder), rank 0 in \(rootFolder)"
            } else if FileManager.default.fileExists(atPath: ImageFolder(rootFolder).member(name)) {
                verdict = "rank \(communicator.rank) on \(host) reads another file at \(ImageFolder(rootFolder).member(name)) than the one rank 0 wrote"
            } else {
                verdict = "rank \(communicator.rank) on \(host) does not see \(ImageFolder(rootFolder).member(name)), which rank 0 wrote"
            }
        }
        let verdicts = try communicator.allgather(string: verdict).filter { !$0.isEmpty }
        let otherFolders = try communicator.allgather(string: otherFolder).filter { !$0.isEmpty }
        try communicator.barrier()
        if communicator.isRoot && !name.isEmpty { unlink(ImageFolder(folder).member(name)) }
        guard otherFolders.isEmpty else {
            throw SharingError(description: """
                the ranks were given different work folders: \(otherFolders.joined(separator: "; ")). Every rank must \
                work in the same folder (rank 0 writes every output there and the others read them back): give every \
                rank the same --work
                """)
        }
        guard verdicts.isEmpty else {
            throw SharingError(description: """
                the work folder \(path) is not shared by all ranks: \(verdicts.joined(separator: "; ")). \
                Rank 0 writes every output there and the other ranks read them back, so every node must see the same \
                folder: put --work on a file system all nodes mount (NFS, Lustre, GPFS, BeeGFS), not on a node-local \
                disk such as /tmp
                """)
        }
    }

    /// The folder's absolute path with links resolved (as given when it cannot be resolved).
    static func resolved(_ path: String) -> String {
        guard let real = realpath(path, nil) else {
            return path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        }
        defer { free(real) }
        return String(cString: real)
    }
}
