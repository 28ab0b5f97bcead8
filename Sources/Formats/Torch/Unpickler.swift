import Foundation

/// A value of the restricted pickle machine: exactly what a PyTorch state
/// dict needs, nothing that could run code.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// A LONG1 too wide for Int, as its little-endian two's-complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list([PickleValue])
    case dict([(key: PickleValue, value: PickleValue)])
    case global(String)
    case storage(TorchStorageReference)
    case tensor(TorchTensorReference)
    case mark

    var asInt: Int? { if case .int(let v) = self { return v }; return nil }
    var asString: String? { if case .string(let v) = self { return v }; return nil }
    var asTuple: [PickleValue]? {
        if case .tuple(let v) = self { return v }
        if case .list(let v) = self { return v }
        return nil
    }
}

struct TorchStorageReference {
    /// e.g. "FloatStorage"
    let type: String
    let key: String
    let count: Int
}

struct TorchTensorReference {
    let storage: TorchStorageReference
    let offset: Int
    let shape: [Int]
    let stride: [Int]
}

/// Runs a pickle (protocols 2 to 4) with a whitelist of globals: OrderedDict,
/// PyTorch's tensor and parameter rebuild functions, and typed storages.
/// Anything else is refused with an error naming it.
struct Unpickler {
    static let allowedCallables: Set<String> = [
        "collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_tensor",
        "torch._utils _rebuild_parameter",
    ]
    static let storageTypes: Set<String> = [
        "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage", "ByteStorage",
    ]

    var reader: ByteReader
    let persistentLoad: (PickleValue) throws -> PickleValue

    init(_ bytes: [UInt8], at position: Int = 0, path: String, persistentLoad: @escaping (PickleValue) throws -> PickleValue) {
        reader = ByteReader(bytes, at: position, path: path)
        self.persistentLoad = persistentLoad
    }

    func error(_ what: String) -> FormatError { FormatError(path: reader.path, "\(what) (pickle byte \(reader.position))") }

    /// Runs until STOP and returns the result; `reader.position` is then just past it.
    mutating func load() throws -> PickleValue {
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]

        func pop() throws -> PickleValue {
            guard let value = stack.popLast() else { throw error("pickle stack underflow") }
            return value
        }
        func popToMark() throws -> [PickleValue] {
            guard let mark = marks.popLast(), mark <= stack.count else { throw error("pickle MARK missing") }
            defer { stack.removeSubrange(mark...) }
            return Array(stack[mark...])
        }
        func setItems(_ items: [PickleValue]) throws {
            guard items.count % 2 == 0, case .dict(var pairs)? = stack.last else { throw error("SETITEMS on a non-dict") }
            for i in stride(from: 0, to: items.count, by: 2) { pairs.append((items[i], items[i + 1])) }
            stack[stack.count - 1] = .dict(pairs)
        }
        func line() throws -> String {
            var bytes: [UInt8] = []
            while true {
                let b = try reader.byte()
                if b == 0x0A { break }
                bytes.append(b)
                if bytes.count > 256 { throw error("GLOBAL name too long") }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        func global(_ module: String, _ name: String) throws -> PickleValue {
            let full = "\(module) \(name)"
            if Self.allowedCallables.contains(full) { return .global(full) }
            if module == "torch", Self.storageTypes.contains(name) { return .global(full) }
            throw error("refusing global \(module).\(name): only state dicts of tensors can be read")
        }

        while true {
            let opcode = try reader.byte()
            switch opcode {
            case 0x80: _ = try reader.byte()  // PROTO
            case 0x95: _ = try reader.take(8)  // FRAME
            case 0x7D: stack.append(.dict([]))  // EMPTY_DICT
            case 0x5D: stack.append(.list([]))  // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))  // EMPTY_TUPLE
            case 0x28: marks.append(stack.count)  // MARK
            case 0x2E: return try pop()  // STOP
            case 0x58: stack.append(.string(String(decoding: try reader.take(try reader.uint32()), as: UTF8.self)))
            case 0x8C: stack.append(.string(String(decoding: try reader.take(Int(try reader.byte())), as: UTF8.self)))
            case 0x8D: stack.append(.string(String(decoding: try reader.take(try reader.uint64AsCount("string length")), as: UTF8.self)))
            case 0x42: stack.append(.bytes(Array(try reader.take(try reader.uint32()))))
            case 0x43: stack.append(.bytes(Array(try reader.take(Int(try reader.byte())))))
            case 0x71: memo[Int(try reader.byte())] = try stack.last ?? { throw error("BINPUT on an empty stack") }()
            case 0x72: memo[try reader.uint32()] = try stack.last ?? { throw error("LONG_BINPUT on an empty stack") }()
            case 0x94: memo[memo.count] = try stack.last ?? { throw error("MEMOIZE on an empty stack") }()
            case 0x68, 0x6A:
                let index = opcode == 0x68 ? Int(try reader.byte()) : try reader.uint32()
                guard let value = memo[index] else { throw error("memo \(index) is empty") }
                stack.append(value)
            case 0x63: stack.append(try global(try line(), try line()))  // GLOBAL
            case 0x93:  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let n = name.asString, let m = module.asString else { throw error("STACK_GLOBAL needs two strings") }
                stack.append(try global(m, n))
            case 0x51: stack.append(try persistentLoad(try pop()))  // BINPERSID
            case 0x74: stack.append(.tuple(try popToMark()))  // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))
            case 0x4A: stack.append(.int(try reader.int32()))  // BININT
            case 0x4B: stack.append(.int(Int(try reader.byte())))  // BININT1
            case 0x4D: stack.append(.int(try reader.uint16()))  // BININT2
            case 0x8A:  // LONG1
                let bytes = Array(try reader.take(Int(try reader.byte())))
                if bytes.count <= 8 {
                    var value: UInt64 = 0
                    for (i, b) in bytes.enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
                    if let last = bytes.last, last & 0x80 != 0, bytes.count < 8 { value |= ~0 << (8 * UInt64(bytes.count)) }
                    stack.append(.int(Int(Int64(bitPattern: value))))
                } else {
                    stack.append(.bigInt(bytes))
                }
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case 0x4E: stack.append(.none)
            case 0x47:  // BINFLOAT, big-endian
                let bits = try reader.take(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                stack.append(.float(Double(bitPattern: bits)))
            case 0x73: let value = try pop(), key = try pop(); try setItems([key, value])
            case 0x75: try setItems(try popToMark())
            case 0x61, 0x65:  // APPEND, APPENDS
                let items = opcode == 0x61 ? [try pop()] : try popToMark()
                guard case .list(var list)? = stack.last else { throw error("APPEND on a non-list") }
                list += items
                stack[stack.count - 1] = .list(list)
            case 0x52:  // REDUCE
                let arguments = try pop(), callable = try pop()
                guard case .global(let name) = callable, let args = arguments.asTuple else {
                    throw error("REDUCE of something that is not an allowed function")
                }
                stack.append(try reduce(name, args))
            default:
                throw error(String(format: "unsupported pickle opcode 0x%02X", opcode))
            }
        }
    }

    func reduce(_ name: String, _ args: [PickleValue]) throws -> PickleValue {
        switch name {
        case "collections OrderedDict":
            return .dict([])
        case "torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_tensor":
            guard args.count >= 4, case .storage(let storage) = args[0], let offset = args[1].asInt,
                  let size = args[2].asTuple?.compactMap(\.asInt), let stride = args[3].asTuple?.compactMap(\.asInt),
                  size.count == args[2].asTuple?.count, stride.count == size.count else {
                throw error("malformed tensor record")
            }
            return .tensor(TorchTensorReference(storage: storage, offset: offset, shape: size, stride: stride))
        case "torch._utils _rebuild_parameter":
            guard let first = args.first, case .tensor = first else { throw error("malformed parameter record") }
            return first
        default:
            throw error("refusing to call \(name)")
        }
    }
}
