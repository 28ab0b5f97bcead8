import Foundation

/// Whole-file reads and crash-safe writes.
///
/// A write goes to a temporary name in the destination's folder, is flushed
/// to disk, and is then renamed over the destination: a job killed at any
/// moment leaves either the old file or the new one, never half of one.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String, createDirectories: Bool = true) throws {
        try bytes.withUnsafeBytes { try write(UnsafeRawBufferPointer($0), to: path, createDirectories: createDirectories) }
    }

    public static func write(_ text: String, to path: String, createDirectories: Bool = true) throws {
        try write(Array(text.utf8), to: path, createDirectories: createDirectories)
    }

    /// A value as pretty-printed JSON with sorted keys and a final newline:
    /// stable, diffable reports.
    public static func writeJSON<Value: Encodable>(_ value: Value, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try write(Array(try encoder.encode(value)) + [10], to: path)
    }

    public static func write(_ bytes: UnsafeRawBufferPointer, to path: String, createDirectories: Bool = true) throws {
        try write(to: path, createDirectories: createDirectories) { fd in
            try writeAll(fd, bytes, path: path)
        }
    }

    /// Streams a file through `body`, which writes to the given descriptor;
    /// for outputs too large to build in memory first.
    public static func write(to path: String, createDirectories: Bool = true, _ body: (Int32) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        if createDirectories {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw FormatError(path: directory, "cannot create the folder: \(error.localizedDescription)")
            }
        }
        let temporary = "\(directory)/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FormatError(path: path, "cannot create \(temporary): \(errnoText())") }
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        do {
            try body(fd)
            guard fsync(fd) == 0 else { throw FormatError(path: path, "fsync failed: \(errnoText())") }
        } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw FormatError(path: path, "close failed: \(errnoText())") }
        guard rename(temporary, path) == 0 else {
            throw FormatError(path: path, "cannot rename \(temporary) into place: \(errnoText())")
        }
        renamed = true
        // The rename itself lives in the directory; flush it too.
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 { fsync(directoryFD); close(directoryFD) }
    }

    /// Writes all of `bytes` to `fd`, retrying short writes.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        guard var cursor = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = Foundation.write(fd, cursor, remaining)
            if written < 0 {
                if errno == EINTR { continue }
                throw FormatError(path: path, "write failed: \(errnoText())")
            }
            cursor += written
            remaining -= written
        }
    }

    public static func read(_ path: String) throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot open it for reading" : "no such file"
            throw FormatError(path: path, reason)
        }
        defer { try? handle.close() }
        do {
            return Array(try handle.readToEnd() ?? Data())
        } catch {
            throw FormatError(path: path, "read failed: \(error.localizedDescription)")
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
