import Foundation

/// Collectives of whole `Codable` values: results and records travel as the
/// values they are, never packed by hand into arrays of numbers. JSON on the
/// wire, with NaN and the infinities spelt out and every Double exact (Swift
/// writes the shortest text that reads back to the same bits).
extension Communicator {
    /// `root`'s value on every rank; the other ranks pass nil.
    public func broadcast<Value: Codable>(_ value: Value?, root: Int) throws -> Value {
        var bytes: [UInt8] = []
        if rank == root {
            guard let value else { throw CommunicatorError("broadcast: rank \(root), the root, has no value to send") }
            bytes = Array(try CodableWire.encoder.encode(value))
        }
        return try CodableWire.decode(Value.self, from: broadcast(bytes: bytes, root: root), what: "broadcast from rank \(root)")
    }

    /// Every rank's value, in rank order, on every rank.
    public func allgather<Value: Codable>(value: Value) throws -> [Value] {
        try allgather(Array(CodableWire.encoder.encode(value))).enumerated().map { rank, bytes in
            try CodableWire.decode(Value.self, from: bytes, what: "all-gather from rank \(rank)")
        }
    }
}

enum CodableWire {
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "+inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    static func decode<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8], what: String) throws -> Value {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "+inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(type, from: Data(bytes))
        } catch {
            throw CommunicatorError("\(what): the ranks disagree on what \(Value.self) is (\(error)); are all ranks the same build?")
        }
    }
}
