import Foundation

/// TensorBoard's event files, written by hand: TFRecord framing (length,
/// masked CRC-32C of the length, data, masked CRC-32C of the data) around
/// `Event` protocol buffers holding scalar `Summary` values. Enough for
/// TensorBoard to plot a run's losses and learning rate.
public final class TensorBoardWriter {
    public let path: String
    private let handle: FileHandle

    /// Opens `folder/events.out.tfevents.{time}.{host}` and writes the version record.
    public init(folder: String, host: String = ProcessInfo.processInfo.hostName) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        path = "\(folder)/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host)"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else { throw FormatError(path: path, "cannot create the event file") }
        self.handle = handle
        // Event { wall_time = 1, file_version = 3 }
        var event = Protobuf()
        event.double(field: 1, Date().timeIntervalSince1970)
        event.bytes(field: 3, Array("brain.Event:2".utf8))
        write(record: event.bytes)
    }

    deinit { try? handle.close() }

    /// One scalar per tag at `step`.
    public func scalars(_ values: [(String, Double)], step: Int) {
        var summary = Protobuf()
        for (tag, value) in values {
            var item = Protobuf()
            item.bytes(field: 1, Array(tag.utf8))
            item.float(field: 2, Float(value))
            summary.bytes(field: 1, item.bytes)
        }
        var event = Protobuf()
        event.double(field: 1, Date().timeIntervalSince1970)
        event.varint(field: 2, UInt64(step))
        event.bytes(field: 5, summary.bytes)
        write(record: event.bytes)
    }

    public func flush() { try? handle.synchronize() }

    private func write(record data: [UInt8]) {
        var length = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { length[i] = UInt8((UInt64(data.count) >> (8 * UInt64(i))) & 0xFF) }
        let out = length + Self.littleEndian(CRC32C.masked(length)) + data + Self.littleEndian(CRC32C.masked(data))
        handle.write(Data(out))
    }

    static func littleEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * UInt32($0))) & 0xFF) } }

    /// Reads back every record's data, checking lengths and both CRCs.
    public static func records(_ path: String) throws -> [[UInt8]] {
        try records(in: try AtomicFile.read(path), path: path)
    }

    public static func records(in bytes: [UInt8], path: String) throws -> [[UInt8]] {
        var reader = ByteReader(bytes, path: path)
        var records: [[UInt8]] = []
        while !reader.atEnd {
            let lengthBytes = Array(try reader.take(8))
            let length = lengthBytes.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            guard try reader.uint32() == Int(CRC32C.masked(lengthBytes)) else { throw FormatError(path: path, "bad length CRC") }
            let data = Array(try reader.take(length))
            guard try reader.uint32() == Int(CRC32C.masked(data)) else { throw FormatError(path: path, "bad data CRC") }
            records.append(data)
        }
        return records
    }
}

/// The few protocol-buffer encodings an Event needs.
struct Protobuf {
    private(set) var bytes: [UInt8] = []

    mutating func raw(varint value: UInt64) {
        var v = value
        repeat {
            let byte = UInt8(v & 0x7F)
            v >>= 7
            bytes.append(v == 0 ? byte : byte | 0x80)
        } while v != 0
    }
    mutating func varint(field: Int, _ value: UInt64) { raw(varint: UInt64(field << 3)); raw(varint: value) }
    mutating func double(field: Int, _ value: Double) {
        raw(varint: UInt64(field << 3 | 1))
        bytes += (0..<8).map { UInt8((value.bitPattern >> (8 * UInt64($0))) & 0xFF) }
    }
    mutating func float(field: Int, _ value: Float) {
        raw(varint: UInt64(field << 3 | 5))
        bytes += (0..<4).map { UInt8((value.bitPattern >> (8 * UInt32($0))) & 0xFF) }
    }
    mutating func bytes(field: Int, _ value: [UInt8]) {
        raw(varint: UInt64(field << 3 | 2))
        raw(varint: UInt64(value.count))
        bytes += value
    }
}

/// CRC-32C (Castagnoli), with TFRecord's mask.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i in
        var crc = UInt32(i)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    public static func masked(_ bytes: [UInt8]) -> UInt32 {
        let crc = checksum(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
