/// The entries of a zip archive as PyTorch writes them (stored, not
/// compressed). Reads the central directory; refuses what it cannot read.
struct ZipArchive {
    /// name → byte range of the entry's data in the archive.
    let entries: [String: Range<Int>]
    let names: [String]

    init(_ bytes: [UInt8], path: String) throws {
        // The end-of-central-directory record: signature PK\5\6, within the last 64 KiB + 22 bytes.
        var eocd = -1
        var i = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 65_535)
        while i >= lowest {
            if bytes[i] == 0x50 && bytes[i + 1] == 0x4B && bytes[i + 2] == 0x05 && bytes[i + 3] == 0x06 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw FormatError(path: path, "not a zip archive, or truncated (no end-of-central-directory record)") }
        var reader = ByteReader(bytes, at: eocd + 10, path: path)
        let count = try reader.uint16()
        _ = try reader.uint32()  // directory size
        let directoryOffset = try reader.uint32()
        guard count != 0xFFFF, directoryOffset != 0xFFFF_FFFF else {
            throw FormatError(path: path, "is a zip64 archive, which is not supported; convert it with a smaller PyTorch checkpoint")
        }
        reader.position = directoryOffset
        var entries: [String: Range<Int>] = [:]
        var names: [String] = []
        for _ in 0..<count {
            guard try reader.unsigned(4) == 0x0201_4B50 else { throw reader.failure("bad central directory entry") }
            _ = try reader.take(6)
            let method = try reader.uint16()
            _ = try reader.take(8)
            let compressedSize = try reader.uint32()
            let size = try reader.uint32()
            let nameLength = try reader.uint16(), extraLength = try reader.uint16(), commentLength = try reader.uint16()
            _ = try reader.take(8)
            let localOffset = try reader.uint32()
            let name = String(decoding: try reader.take(nameLength), as: UTF8.self)
            _ = try reader.take(extraLength + commentLength)
            guard method == 0 else {
                throw FormatError(path: path, "entry \(name) is compressed (method \(method)); only stored entries, as torch.save writes them, are supported")
            }
            guard compressedSize == size, size != 0xFFFF_FFFF, localOffset != 0xFFFF_FFFF else {
                throw FormatError(path: path, "entry \(name) needs zip64, which is not supported")
            }
            var local = ByteReader(bytes, at: localOffset, path: path)
            guard try local.unsigned(4) == 0x0403_4B50 else { throw local.failure("bad local header of \(name)") }
            _ = try local.take(22)
            let localName = try local.uint16(), localExtra = try local.uint16()
            _ = try local.take(localName + localExtra)
            let start = local.position
            guard size <= bytes.count - start else { throw local.failure("entry \(name) runs past the end") }
            entries[name] = start..<(start + size)
            names.append(name)
        }
        self.entries = entries
        self.names = names
    }
}
