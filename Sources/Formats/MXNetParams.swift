import Foundation

/// MXNet's NDArray list files (`.params`), as `mxnet.nd.save` writes them:
/// the current, V1 and legacy (pre-magic) array layouts. Dense float32
/// arrays only, which is what ImageNet weights hold.
public enum MXNetParams {
    static let listMagic: UInt64 = 0x112
    static let currentMagic: UInt64 = 0xF993_FAC9
    static let v1Magic: UInt64 = 0xF993_FAC8

    public static func isParams(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 16 && bytes.prefix(8).elementsEqual([0x12, 0x01, 0, 0, 0, 0, 0, 0])
    }

    /// The named arrays in file order (an `arg:` / `aux:` prefix is kept).
    public static func read(_ path: String) throws -> [SafetensorsTensor] {
        try decode(try AtomicFile.read(path), path: path)
    }

    public static func decode(_ bytes: [UInt8], path: String) throws -> [SafetensorsTensor] {
        var reader = ByteReader(bytes, path: path)
        guard try reader.unsigned(8) == listMagic else {
            throw FormatError(path: path, "is not an MXNet .params file (bad list magic)")
        }
        _ = try reader.unsigned(8)  // reserved
        let count = try reader.uint64AsCount("array count")
        var arrays: [(shape: [Int], payload: [UInt8])] = []
        for index in 0..<count {
            arrays.append(try array(&reader, index: index))
        }
        let nameCount = try reader.uint64AsCount("name count")
        guard nameCount == count else {
            throw FormatError(path: path, "has \(count) arrays but \(nameCount) names; an unnamed list cannot be mapped to a model")
        }
        var tensors: [SafetensorsTensor] = []
        for (shape, payload) in arrays {
            let length = try reader.uint64AsCount("name length")
            let name = String(decoding: try reader.take(length), as: UTF8.self)
            tensors.append(SafetensorsTensor(name: name, type: .float32, shape: shape, payload: payload))
        }
        return tensors
    }

    static func array(_ reader: inout ByteReader, index: Int) throws -> (shape: [Int], payload: [UInt8]) {
        let first = try reader.unsigned(4)
        var shape: [Int] = []
        switch first {
        case currentMagic, v1Magic:
            if first == currentMagic {
                let storage = try reader.int32()
                guard storage == 0 else { throw reader.failure("array \(index) is sparse (storage type \(storage))") }
            }
            let ndim = try reader.uint32()
            guard ndim <= 8 else { throw reader.failure("array \(index) has \(ndim) dimensions") }
            for _ in 0..<ndim { shape.append(try reader.int64()) }
        default:
            // Legacy: the first word is ndim, dims are uint32.
            let ndim = Int(first)
            guard ndim <= 8 else { throw reader.failure("array \(index): neither a magic number nor a plausible rank") }
            for _ in 0..<ndim { shape.append(try reader.uint32()) }
        }
        guard shape.allSatisfy({ $0 >= 0 && $0 < Int(Int32.max) }) else { throw reader.failure("array \(index) has a bad shape \(shape)") }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= reader.remaining else { throw reader.failure("array \(index) is larger than the file") }
            count = product
        }
        if shape.isEmpty { return ([], []) }  // MXNet writes nothing more for an empty array
        _ = try reader.int32()  // device type
        _ = try reader.int32()  // device id
        let dtype = try reader.int32()
        guard dtype == 0 else { throw reader.failure("array \(index) has dtype \(dtype); only float32 (0) is supported") }
        return (shape, Array(try reader.take(count * 4)))
    }
}
