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

    /// Elements of a list, tuple or dict; 0 for anything else.
    var containerCount: Int {
        switch self {
        case .list(let items), .tuple(let items): return items.count
        case .dict(let pairs): return pairs.count
        default: return 0
        }
    }

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
        "torch._utils _rebuild_parameter", "torch._utils _rebuild_parameter_with_state",
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

    /// Deeper nesting than any checkpoint has (a state dict's `_metadata` is
    /// 3 levels, an optimiser's state 5): refused, so that neither this reader
    /// nor the release of what it built recurses without bound.
    static let nestingLimit = 100
    /// Element copies allowed in one load. Growing a container that the memo
    /// also holds copies it (values, not references), so a hostile file of
    /// single SETITEMs could take quadratic time; real checkpoints, which add
    /// items in batches of 1000, use a tiny fraction of this.
    static let copyBudget = 50_000_000

    /// A value on the pickle stack and how deeply it nests containers.
    struct Slot {
        var value: PickleValue
        var depth: Int
    }

    /// Runs until STOP and returns the result; `reader.position` is then just past it.
    mutating func load() throws -> PickleValue {
        var stack: [Slot] = []
        var marks: [Int] = []
        var memo: [Int: Slot] = [:]
        var copies = 0

        func push(_ value: PickleValue, depth: Int = 0) throws {
            guard depth <= Self.nestingLimit else { throw error("containers nested deeper than \(Self.nestingLimit) levels") }
            stack.append(Slot(value: value, depth: depth))
        }
        func pushContainer(_ value: PickleValue, of items: [Slot]) throws {
            try push(value, depth: 1 + (items.map(\.depth).max() ?? 0))
        }
        func pop() throws -> Slot {
            guard let slot = stack.popLast() else { throw error("pickle stack underflow") }
            return slot
        }
        func popToMark() throws -> [Slot] {
            guard let mark = marks.popLast(), mark <= stack.count else { throw error("pickle MARK missing") }
            defer { stack.removeSubrange(mark...) }
            return Array(stack[mark...])
        }
        func top() throws -> Slot {
            guard let slot = stack.last else { throw error("memo write on an empty stack") }
            return slot
        }
        /// Adds items to the container on top of the stack, deepening it as needed.
        func extendTop(with items: [Slot], _ extend: (inout PickleValue, [PickleValue]) throws -> Void) throws {
            guard var slot = stack.popLast() else { throw error("pickle stack underflow") }
            copies += items.count + slot.value.containerCount
            guard copies <= Self.copyBudget else { throw error("pickle builds its containers too many times over") }
            try extend(&slot.value, items.map(\.value))
            slot.depth = max(slot.depth, 1 + (items.map(\.depth).max() ?? 0))
            try push(slot.value, depth: slot.depth)
        }
        func setItems(_ items: [Slot]) throws {
            try extendTop(with: items) { container, values in
                guard values.count % 2 == 0, case .dict(var pairs) = container else { throw error("SETITEMS on a non-dict") }
                container = .none  // release the old copy before growing the new one
                for i in stride(from: 0, to: values.count, by: 2) { pairs.append((values[i], values[i + 1])) }
                container = .dict(pairs)
            }
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
            case 0x7D: try push(.dict([]), depth: 1)  // EMPTY_DICT
            case 0x5D: try push(.list([]), depth: 1)  // EMPTY_LIST
            case 0x29: try push(.tuple([]), depth: 1)  // EMPTY_TUPLE
            case 0x28: marks.append(stack.count)  // MARK
            case 0x2E: return try pop().value  // STOP
            case 0x58: try push(.string(String(decoding: try reader.take(try reader.uint32()), as: UTF8.self)))
            case 0x8C: try push(.string(String(decoding: try reader.take(Int(try reader.byte())), as: UTF8.self)))
            case 0x8D: try push(.string(String(decoding: try reader.take(try reader.uint64AsCount("string length")), as: UTF8.self)))
            case 0x42: try push(.bytes(Array(try reader.take(try reader.uint32()))))
            case 0x43: try push(.bytes(Array(try reader.take(Int(try reader.byte())))))
            case 0x71: memo[Int(try reader.byte())] = try top()  // BINPUT
            case 0x72: memo[try reader.uint32()] = try top()  // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let index = opcode == 0x68 ? Int(try reader.byte()) : try reader.uint32()
                guard let slot = memo[index] else { throw error("memo \(index) is empty") }
                try push(slot.value, depth: slot.depth)
            case 0x63: try push(try global(try line(), try line()))  // GLOBAL
            case 0x93:  // STACK_GLOBAL
                let name = try pop().value, module = try pop().value
                guard let n = name.asString, let m = module.asString else { throw error("STACK_GLOBAL needs two strings") }
                try push(try global(m, n))
            case 0x51: try push(try persistentLoad(try pop().value))  // BINPERSID
            case 0x74: let items = try popToMark(); try pushContainer(.tuple(items.map(\.value)), of: items)  // TUPLE
            case 0x85, 0x86, 0x87:  // TUPLE1, TUPLE2, TUPLE3
                var items: [Slot] = []
                for _ in 0..<Int(opcode - 0x84) { items.insert(try pop(), at: 0) }
                try pushContainer(.tuple(items.map(\.value)), of: items)
            case 0x4A: try push(.int(try reader.int32()))  // BININT
            case 0x4B: try push(.int(Int(try reader.byte())))  // BININT1
            case 0x4D: try push(.int(try reader.uint16()))  // BININT2
            case 0x8A:  // LONG1
                let bytes = Array(try reader.take(Int(try reader.byte())))
                if bytes.count <= 8 {
                    var value: UInt64 = 0
                    for (i, b) in bytes.enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
                    if let last = bytes.last, last & 0x80 != 0, bytes.count < 8 { value |= ~0 << (8 * UInt64(bytes.count)) }
                    try push(.int(Int(Int64(bitPattern: value))))
                } else {
                    try push(.bigInt(bytes))
                }
            case 0x88: try push(.bool(true))
            case 0x89: try push(.bool(false))
            case 0x4E: try push(.none)
            case 0x47:  // BINFLOAT, big-endian
                let bits = try reader.take(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                try push(.float(Double(bitPattern: bits)))
            case 0x73: let value = try pop(), key = try pop(); try setItems([key, value])  // SETITEM
            case 0x75: try setItems(try popToMark())  // SETITEMS
            case 0x61, 0x65:  // APPEND, APPENDS
                let items = opcode == 0x61 ? [try pop()] : try popToMark()
                try extendTop(with: items) { container, values in
                    guard case .list(var list) = container else { throw error("APPEND on a non-list") }
                    container = .none
                    list += values
                    container = .list(list)
                }
            case 0x62:  // BUILD
                // torch.save(module.state_dict()) pickles an OrderedDict with a
                // `_metadata` attribute (per-module versions), which BUILD sets.
                // The items are the state dict; attributes carry nothing for us.
                let state = try pop().value
                guard case .dict = try top().value else {
                    throw error("BUILD on something that is not a dict: only state dicts of tensors can be read")
                }
                try checkBuildState(state)
            case 0x52:  // REDUCE
                let arguments = try pop(), callable = try pop().value
                guard case .global(let name) = callable, let args = arguments.value.asTuple else {
                    throw error("REDUCE of something that is not an allowed function")
                }
                try push(try reduce(name, args), depth: arguments.depth)
            default:
                throw error(String(format: "unsupported pickle opcode 0x%02X", opcode))
            }
        }
    }

    /// The state BUILD may set on a dict: an attribute dict, or Python's
    /// `(state, slotstate)` pair of dicts (either may be None).
    func checkBuildState(_ state: PickleValue) throws {
        func isAttributeDict(_ value: PickleValue) -> Bool {
            switch value {
            case .none: return true
            case .dict(let pairs): return pairs.allSatisfy { $0.key.asString != nil }
            default: return false
            }
        }
        if isAttributeDict(state) { return }
        if case .tuple(let pair) = state, pair.count == 2, pair.allSatisfy(isAttributeDict) { return }
        throw error("BUILD with a state that is neither a dict of attributes nor a (state, slotstate) pair")
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
        case "torch._utils _rebuild_parameter", "torch._utils _rebuild_parameter_with_state":
            guard let first = args.first, case .tensor = first else { throw error("malformed parameter record") }
            return first
        default:
            throw error("refusing to call \(name)")
        }
    }
}
