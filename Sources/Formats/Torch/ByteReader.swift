/// Bounds-checked little-endian reads over a byte array: every reader of an
/// untrusted format goes through this, so malformed input ends in an error,
/// never a trap.
struct ByteReader {
    let bytes: [UInt8]
    var position: Int
    let path: String

    init(_ bytes: [UInt8], at position: Int = 0, path: String) {
        self.bytes = bytes
        self.position = position
        self.path = path
    }

    var remaining: Int { bytes.count - position }
    var atEnd: Bool { position >= bytes.count }

    func failure(_ what: String) -> FormatError {
        FormatError(path: path, "\(what) at byte \(position) (truncated or corrupt file)")
    }

    mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw failure("needs \(count) more bytes") }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    mutating func byte() throws -> UInt8 { try take(1).first! }

    mutating func unsigned(_ width: Int) throws -> UInt64 {
        let slice = try take(width)
        var value: UInt64 = 0
        for (i, b) in slice.enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
        return value
    }

    mutating func uint16() throws -> Int { Int(try unsigned(2)) }
    mutating func uint32() throws -> Int { Int(try unsigned(4)) }
    mutating func int32() throws -> Int { Int(Int32(truncatingIfNeeded: try unsigned(4))) }
    mutating func int64() throws -> Int { Int(Int64(bitPattern: try unsigned(8))) }

    mutating func uint64AsCount(_ what: String) throws -> Int {
        let value = try unsigned(8)
        guard value <= UInt64(Int32.max) else { throw failure("implausible \(what) \(value)") }
        return Int(value)
    }
}
