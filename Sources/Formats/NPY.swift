import Foundation

/// Element types of `.npy` files this project reads and writes, all
/// little-endian as NumPy writes them on every machine we run on.
public enum NPYType: String, Sendable, CaseIterable {
    case float32 = "<f4", float64 = "<f8", int32 = "<i4", int64 = "<i8", uint8 = "|u1", bool = "|b1"

    public var byteCount: Int {
        switch self {
        case .float32, .int32: return 4
        case .float64, .int64: return 8
        case .uint8, .bool: return 1
        }
    }
}

public protocol NPYScalar {
    static var npyType: NPYType { get }
}
extension Float: NPYScalar { public static var npyType: NPYType { .float32 } }
extension Double: NPYScalar { public static var npyType: NPYType { .float64 } }
extension Int32: NPYScalar { public static var npyType: NPYType { .int32 } }
extension Int64: NPYScalar { public static var npyType: NPYType { .int64 } }
extension UInt8: NPYScalar { public static var npyType: NPYType { .uint8 } }

/// An n-dimensional array as stored in a `.npy` file: C order, raw
/// little-endian payload.
public struct NPYArray: Sendable {
    public let type: NPYType
    public let shape: [Int]
    public let payload: [UInt8]

    public var count: Int { shape.reduce(1, *) }

    public init(type: NPYType, shape: [Int], payload: [UInt8]) {
        precondition(payload.count == shape.reduce(1, *) * type.byteCount, "payload size does not match shape")
        self.type = type
        self.shape = shape
        self.payload = payload
    }

    public init<T: NPYScalar>(_ values: [T], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values do not fill shape \(shape)")
        self.init(type: T.npyType, shape: shape, payload: values.withUnsafeBytes { Array($0) })
    }

    /// The elements, which must be of exactly type `T`.
    public func values<T: NPYScalar>(as: T.Type = T.self, path: String = "<npy>") throws -> [T] {
        guard type == T.npyType else {
            throw FormatError(path: path, "holds \(type.rawValue) values where \(T.npyType.rawValue) was expected")
        }
        return payload.withUnsafeBytes { raw in
            [T](unsafeUninitializedCapacity: count) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
                initialized = count
            }
        }
    }

    /// The elements converted to Float from any numeric type (labels saved as
    /// float64 or int64 by the reference, for instance).
    public func floatValues() -> [Float] {
        payload.withUnsafeBytes { raw in
            switch type {
            case .float32: return Array(raw.bindMemory(to: Float.self))
            case .float64: return raw.bindMemory(to: Double.self).map { Float($0) }
            case .int32: return raw.bindMemory(to: Int32.self).map { Float($0) }
            case .int64: return raw.bindMemory(to: Int64.self).map { Float($0) }
            case .uint8, .bool: return raw.map { Float($0) }
            }
        }
    }
}

/// NumPy's `.npy` format, version 1.0 on write (2.0 when a header needs it),
/// 1.0 to 3.0 on read.
public enum NPY {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    public static func encode(_ array: NPYArray) -> [UInt8] {
        let shapeText: String
        switch array.shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(array.shape[0]),)"
        default: shapeText = "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var header = "{'descr': '\(array.type.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        // NumPy pads the header with spaces and a newline so that the data
        // starts on a 64-byte boundary.
        let version: UInt8 = header.utf8.count + 12 > 65_535 ? 2 : 1
        let prefix = magic.count + 2 + (version == 1 ? 2 : 4)
        let unpadded = prefix + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes = magic + [version, 0]
        let length = header.utf8.count
        if version == 1 {
            bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
        } else {
            bytes += (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) }
        }
        bytes += Array(header.utf8)
        bytes += array.payload
        return bytes
    }

    public static func decode(_ bytes: [UInt8], path: String = "<npy>") throws -> NPYArray {
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw FormatError(path: path, "not a .npy file (bad magic); write it with numpy.save")
        }
        let major = bytes[6]
        let headerStart: Int
        let headerLength: Int
        switch major {
        case 1:
            headerStart = 10
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        case 2, 3:
            guard bytes.count >= 12 else { throw FormatError(path: path, "truncated .npy header") }
            headerStart = 12
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
        default:
            throw FormatError(path: path, ".npy format version \(major) is not supported (1 to 3 are)")
        }
        guard headerLength <= bytes.count - headerStart else {
            throw FormatError(path: path, "truncated .npy header")
        }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        let (type, fortranOrder, shape) = try parseHeader(header, path: path)
        guard !fortranOrder else {
            throw FormatError(path: path, "is in Fortran order; save a C-ordered array (numpy.ascontiguousarray)")
        }
        let dataStart = headerStart + headerLength
        guard let expected = DecodeLimits.byteCount(shape, elementSize: type.byteCount) else {
            throw FormatError(path: path, "shape \(shape) is too large to be real (corrupt header)")
        }
        guard bytes.count - dataStart == expected else {
            throw FormatError(path: path, """
                holds \(bytes.count - dataStart) data bytes, but shape \(shape) of \(type.rawValue) needs \(expected) \
                (truncated or corrupt file)
                """)
        }
        return NPYArray(type: type, shape: shape, payload: Array(bytes[dataStart...]))
    }

    public static func read(_ path: String) throws -> NPYArray {
        try decode(try AtomicFile.read(path), path: path)
    }

    public static func write(_ array: NPYArray, to path: String) throws {
        try AtomicFile.write(encode(array), to: path)
    }

    public static func write<T: NPYScalar>(_ values: [T], shape: [Int], to path: String) throws {
        try write(NPYArray(values, shape: shape), to: path)
    }

    /// Parses the Python dict literal of a `.npy` header.
    static func parseHeader(_ header: String, path: String) throws -> (NPYType, Bool, [Int]) {
        func value(of key: String) -> Substring? {
            guard let keyRange = header.range(of: "'\(key)'") else { return nil }
            let rest = header[keyRange.upperBound...].drop { $0 == " " || $0 == ":" }
            return rest
        }
        guard let descrRest = value(of: "descr"), descrRest.first == "'",
              let close = descrRest.dropFirst().firstIndex(of: "'") else {
            throw FormatError(path: path, "malformed .npy header: no 'descr'")
        }
        var descr = String(descrRest[descrRest.index(after: descrRest.startIndex)..<close])
        // "=" (native) is little-endian on every machine this project supports;
        // one-byte types may be written with either marker.
        if descr.hasPrefix("=") { descr = "<" + descr.dropFirst() }
        if descr == "<u1" || descr == "<b1" { descr = "|" + descr.dropFirst() }
        guard let type = NPYType(rawValue: descr) else {
            throw FormatError(path: path, """
                has element type '\(descr)'; supported are \(NPYType.allCases.map(\.rawValue).joined(separator: ", ")) \
                (big-endian and object arrays are not)
                """)
        }
        guard let fortranRest = value(of: "fortran_order") else {
            throw FormatError(path: path, "malformed .npy header: no 'fortran_order'")
        }
        let fortran = fortranRest.hasPrefix("True")
        guard let shapeRest = value(of: "shape"), shapeRest.first == "(",
              let shapeEnd = shapeRest.firstIndex(of: ")") else {
            throw FormatError(path: path, "malformed .npy header: no 'shape'")
        }
        let inner = shapeRest[shapeRest.index(after: shapeRest.startIndex)..<shapeEnd]
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let dimension = Int(trimmed.hasSuffix("L") ? String(trimmed.dropLast()) : trimmed), dimension >= 0 else {
                throw FormatError(path: path, "malformed .npy shape '\(inner)'")
            }
            shape.append(dimension)
        }
        return (type, fortran, shape)
    }
}
