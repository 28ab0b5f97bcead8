import Foundation

/// One tensor of a safetensors file.
public struct SafetensorsTensor: Sendable {
    public enum DataType: String, Sendable {
        case float32 = "F32", float64 = "F64", float16 = "F16", bfloat16 = "BF16"
        case int64 = "I64", int32 = "I32", uint8 = "U8", bool = "BOOL"

        public var byteCount: Int {
            switch self {
            case .float64, .int64: return 8
            case .float32, .int32: return 4
            case .float16, .bfloat16: return 2
            case .uint8, .bool: return 1
            }
        }
    }

    public let name: String
    public let type: DataType
    public let shape: [Int]
    /// Raw little-endian bytes.
    public let payload: [UInt8]

    public init(name: String, type: DataType, shape: [Int], payload: [UInt8]) {
        self.name = name
        self.type = type
        self.shape = shape
        self.payload = payload
    }

    public init(name: String, shape: [Int], floats: UnsafeBufferPointer<Float>) {
        precondition(floats.count == shape.reduce(1, *), "\(name): \(floats.count) values for shape \(shape)")
        self.init(name: name, type: .float32, shape: shape, payload: Array(UnsafeRawBufferPointer(floats)))
    }

    public var count: Int { shape.reduce(1, *) }

    /// The values as Float, converted from any floating-point type.
    public func floatValues(path: String = "<safetensors>") throws -> [Float] {
        try payload.withUnsafeBytes { raw -> [Float] in
            switch type {
            case .float32:
                return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
                    initialized = count
                }
            case .float64:
                return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self)) }
            case .float16:
                return (0..<count).map { Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
            case .bfloat16:
                return (0..<count).map {
                    Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) << 16)
                }
            default:
                throw FormatError(path: path, "tensor '\(name)' holds \(type.rawValue), not floating-point values")
            }
        }
    }
}

/// The safetensors format: an 8-byte little-endian header length, a JSON
/// header naming each tensor's type, shape and byte range, then the raw data.
public enum Safetensors {
    /// Tensors in file order (the header's JSON object order is not kept by
    /// JSON parsers, so the order is that of the data offsets).
    public static func decode(_ bytes: [UInt8], path: String = "<safetensors>") throws -> (tensors: [SafetensorsTensor], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw FormatError(path: path, "too short for a safetensors file (truncated?)") }
        let headerLength = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        guard headerLength > 1, headerLength <= bytes.count - 8, headerLength < 100_000_000 else {
            throw FormatError(path: path, "bad safetensors header length \(headerLength) (not a safetensors file, or truncated)")
        }
        let headerBytes = Data(bytes[8..<(8 + headerLength)])
        guard let header = try? JSONSerialization.jsonObject(with: headerBytes) as? [String: Any] else {
            throw FormatError(path: path, "the safetensors header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart
        var metadata: [String: String] = [:]
        var tensors: [(offset: Int, tensor: SafetensorsTensor)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let entry = value as? [String: Any], let typeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw FormatError(path: path, "malformed header entry for '\(name)'")
            }
            guard let type = SafetensorsTensor.DataType(rawValue: typeName) else {
                throw FormatError(path: path, "tensor '\(name)' has unsupported dtype \(typeName)")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataLength,
                  end - begin == DecodeLimits.byteCount(shape, elementSize: type.byteCount) else {
                throw FormatError(path: path, """
                    tensor '\(name)' \(shape) \(typeName) has byte range \(begin)..<\(end) but the data holds \
                    \(dataLength) bytes (truncated or corrupt file)
                    """)
            }
            let payload = Array(bytes[(dataStart + begin)..<(dataStart + end)])
            tensors.append((begin, SafetensorsTensor(name: name, type: type, shape: shape, payload: payload)))
        }
        return (tensors.sorted { $0.offset < $1.offset }.map(\.tensor), metadata)
    }

    public static func read(_ path: String) throws -> (tensors: [SafetensorsTensor], metadata: [String: String]) {
        try decode(try AtomicFile.read(path), path: path)
    }

    /// Tensors written in the given order, data 8-byte aligned.
    public static func encode(_ tensors: [SafetensorsTensor], metadata: [String: String] = [:]) -> [UInt8] {
        var bytes = header(tensors.map { ($0.name, $0.type, $0.shape, $0.payload.count) }, metadata: metadata)
        bytes.reserveCapacity(bytes.count + tensors.reduce(0) { $0 + $1.payload.count })
        for tensor in tensors { bytes += tensor.payload }
        return bytes
    }

    /// The file's first bytes: the header's length, then the header (JSON,
    /// padded with spaces so that the data starts 8-byte aligned).
    static func header(_ entries: [(name: String, type: SafetensorsTensor.DataType, shape: [Int], byteCount: Int)],
                       metadata: [String: String]) -> [UInt8] {
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for entry in entries {
            let shape = entry.shape.map(String.init).joined(separator: ",")
            fields.append("\(jsonString(entry.name)):{\"dtype\":\"\(entry.type.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + entry.byteCount)]}")
            offset += entry.byteCount
        }
        var header = Array(("{" + fields.joined(separator: ",") + "}").utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
        return (0..<8).map { UInt8((header.count >> (8 * $0)) & 0xFF) } + header
    }

    public static func write(_ tensors: [SafetensorsTensor], metadata: [String: String] = [:], to path: String) throws {
        try write(to: path, tensors.map { ($0.name, $0.type, $0.shape, $0.payload.count) }, metadata: metadata) { fd in
            for tensor in tensors { try tensor.payload.withUnsafeBytes { try AtomicFile.writeAll(fd, $0, path: path) } }
        }
    }

    /// float32 tensors written straight from where they lie (a parameter
    /// store, the momentum): no copy of them is built.
    public static func write(floats tensors: [(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)],
                             metadata: [String: String] = [:], to path: String) throws {
        for tensor in tensors {
            precondition(tensor.values.count == tensor.shape.reduce(1, *), "\(tensor.name): \(tensor.values.count) values for shape \(tensor.shape)")
        }
        try write(to: path, tensors.map { ($0.name, .float32, $0.shape, $0.values.count * MemoryLayout<Float>.stride) },
                  metadata: metadata) { fd in
            for tensor in tensors { try AtomicFile.writeAll(fd, UnsafeRawBufferPointer(tensor.values), path: path) }
        }
    }

    /// The header, then whatever `payloads` writes (in the entries' order), atomically.
    private static func write(to path: String, _ entries: [(name: String, type: SafetensorsTensor.DataType, shape: [Int], byteCount: Int)],
                              metadata: [String: String], payloads: (Int32) throws -> Void) throws {
        try AtomicFile.write(to: path) { fd in
            try header(entries, metadata: metadata).withUnsafeBytes { try AtomicFile.writeAll(fd, $0, path: path) }
            try payloads(fd)
        }
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}
