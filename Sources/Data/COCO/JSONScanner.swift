import Foundation

/// A forward-only reader of JSON bytes that checks the syntax as it goes and
/// builds nothing it is not asked for: COCO's 333 MB annotation file is read
/// into compact arrays, its polygons left as byte ranges until they are drawn.
struct JSONScanner {
    enum Token { case object, array, string, number, literal }

    let bytes: UnsafeBufferPointer<UInt8>
    /// Where errors say the file is.
    let path: String
    var position = 0
    /// Objects and arrays open around the position: bounded, so that no file can exhaust the stack.
    private var depth = 0
    static let maximumDepth = 64

    init(_ bytes: UnsafeBufferPointer<UInt8>, path: String, position: Int = 0) {
        self.bytes = bytes
        self.path = path
        self.position = position
    }

    func error(_ message: String, at offset: Int? = nil) -> DataError {
        DataError("\(path): byte \(offset ?? position): \(message)")
    }

    var atEnd: Bool { position >= bytes.count }

    mutating func skipWhitespace() {
        while position < bytes.count {
            let b = bytes[position]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            position += 1
        }
    }

    /// The next value's kind, after whitespace.
    mutating func peek() throws -> Token {
        skipWhitespace()
        guard position < bytes.count else { throw error("the file ends where a value should be") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"): return .literal
        default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[position])))'")
        }
    }

    mutating func expect(_ character: Character) throws {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == character.asciiValue! else {
            throw error(position < bytes.count ? "expected '\(character)'" : "the file ends where '\(character)' should be")
        }
        position += 1
    }

    /// Calls `body` with each key of an object, positioned at its value; `body` must consume the value.
    mutating func object(_ body: (inout JSONScanner, String) throws -> Void) throws {
        try expect("{")
        try enter()
        defer { depth -= 1 }
        skipWhitespace()
        if position < bytes.count && bytes[position] == UInt8(ascii: "}") {
            position += 1
            return
        }
        while true {
            let key = try string()
            try expect(":")
            try body(&self, key)
            skipWhitespace()
            guard position < bytes.count else { throw error("the file ends inside an object") }
            let b = bytes[position]
            position += 1
            if b == UInt8(ascii: "}") { return }
            guard b == UInt8(ascii: ",") else { throw error("expected ',' or '}' in an object", at: position - 1) }
        }
    }

    /// Calls `body` with each element's index, positioned at it; `body` must consume the element.
    mutating func array(_ body: (inout JSONScanner, Int) throws -> Void) throws {
        try expect("[")
        try enter()
        defer { depth -= 1 }
        skipWhitespace()
        if position < bytes.count && bytes[position] == UInt8(ascii: "]") {
            position += 1
            return
        }
        var index = 0
        while true {
            try body(&self, index)
            index += 1
            skipWhitespace()
            guard position < bytes.count else { throw error("the file ends inside an array") }
            let b = bytes[position]
            position += 1
            if b == UInt8(ascii: "]") { return }
            guard b == UInt8(ascii: ",") else { throw error("expected ',' or ']' in an array", at: position - 1) }
        }
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= Self.maximumDepth else { throw error("objects and arrays nested more than \(Self.maximumDepth) deep") }
    }

    /// A string value, escapes decoded.
    mutating func string() throws -> String {
        let range = try stringBytes()
        var raw = Array(bytes[range])
        if raw.contains(UInt8(ascii: "\\")) {
            // Rare in COCO (names are plain): let Foundation decode the escapes exactly.
            raw = [UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\"")]
            guard let text = try? JSONDecoder().decode(String.self, from: Data(raw)) else {
                throw error("a string with an invalid escape", at: range.lowerBound)
            }
            return text
        }
        return String(decoding: raw, as: UTF8.self)
    }

    /// The bytes between a string's quotes (escapes left as they are).
    mutating func stringBytes() throws -> Range<Int> {
        try expect("\"")
        let start = position
        while position < bytes.count {
            let b = bytes[position]
            if b == UInt8(ascii: "\"") {
                position += 1
                return start..<(position - 1)
            }
            if b == UInt8(ascii: "\\") { position += 1 } else if b < 0x20 { throw error("a control character inside a string") }
            position += 1
        }
        throw error("the file ends inside a string", at: start - 1)
    }

    /// The bytes of a number, checked against JSON's grammar.
    mutating func numberBytes() throws -> Range<Int> {
        skipWhitespace()
        let start = position
        func digits() -> Int {
            let first = position
            while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39 { position += 1 }
            return position - first
        }
        if position < bytes.count && bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard digits() > 0 else { throw error("a malformed number", at: start) }
        if position < bytes.count && bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits() > 0 else { throw error("a malformed number", at: start) }
        }
        if position < bytes.count && (bytes[position] | 0x20) == UInt8(ascii: "e") {
            position += 1
            if position < bytes.count && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-")) { position += 1 }
            guard digits() > 0 else { throw error("a malformed number", at: start) }
        }
        return start..<position
    }

    /// A number as Python's float() reads it: correctly rounded.
    mutating func double() throws -> Double {
        let range = try numberBytes()
        return try Self.double(bytes, range, path: path)
    }

    static func double(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, path: String) throws -> Double {
        guard range.count < 64 else { throw DataError("\(path): byte \(range.lowerBound): a number of \(range.count) characters") }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
            for (i, j) in range.enumerated() { buffer[i] = CChar(bitPattern: bytes[j]) }
            buffer[range.count] = 0
            return strtod(buffer.baseAddress!, nil)
        }
    }

    /// An integer value (a number with neither fraction nor exponent, or one that is whole).
    mutating func integer() throws -> Int64 {
        let range = try numberBytes()
        var value: Int64 = 0, negative = false
        var simple = true
        for j in range {
            let b = bytes[j]
            if b == UInt8(ascii: "-") { negative = true; continue }
            guard b >= 0x30 && b <= 0x39 else { simple = false; break }
            let (product, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = product.addingReportingOverflow(Int64(b - 0x30))
            guard !overflow1 && !overflow2 else { throw error("an integer too large", at: range.lowerBound) }
            value = sum
        }
        if simple { return negative ? -value : value }
        let double = try Self.double(bytes, range, path: path)
        guard double == double.rounded(), abs(double) < 9e18 else { throw error("expected an integer", at: range.lowerBound) }
        return Int64(double)
    }

    /// true, false or null.
    mutating func literal() throws -> Bool? {
        skipWhitespace()
        for (word, value) in [("true", true as Bool?), ("false", false), ("null", nil)] {
            let utf8 = Array(word.utf8)
            if position + utf8.count <= bytes.count && Array(bytes[position..<(position + utf8.count)]) == utf8 {
                position += utf8.count
                return value
            }
        }
        throw error("expected true, false or null")
    }

    /// Skips one value of any kind, checking its syntax; returns its byte range.
    @discardableResult
    mutating func skipValue() throws -> Range<Int> {
        let kind = try peek()
        let start = position
        switch kind {
        case .object: try object { scanner, _ in try scanner.skipValue() }
        case .array: try array { scanner, _ in try scanner.skipValue() }
        case .string: _ = try stringBytes()
        case .number: _ = try numberBytes()
        case .literal: _ = try literal()
        }
        return start..<position
    }
}
