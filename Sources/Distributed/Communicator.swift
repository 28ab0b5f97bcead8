/// The scalar types the collectives move. Kept as a closed list so that each
/// implementation can map it to its own wire type without exposing MPI in the API.
public enum CollectiveScalarKind: Sendable {
    case float32, float64, int32, int64, uint8, uint16
}

public protocol CollectiveScalar: Sendable {
    static var collectiveKind: CollectiveScalarKind { get }
    static var zero: Self { get }
}

extension Float: CollectiveScalar {
    public static var collectiveKind: CollectiveScalarKind { .float32 }
}
extension Double: CollectiveScalar {
    public static var collectiveKind: CollectiveScalarKind { .float64 }
}
extension Int32: CollectiveScalar {
    public static var collectiveKind: CollectiveScalarKind { .int32 }
}
extension Int64: CollectiveScalar {
    public static var collectiveKind: CollectiveScalarKind { .int64 }
}
extension UInt8: CollectiveScalar {
    public static var collectiveKind: CollectiveScalarKind { .uint8 }
}
/// bfloat16 values travel as their bit patterns.
extension UInt16: CollectiveScalar {
    public static var collectiveKind: CollectiveScalarKind { .uint16 }
}

public struct CommunicatorError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A started non-blocking collective. Its buffers must stay alive and
/// untouched until it has completed.
public protocol CollectiveRequest: AnyObject {
    /// Drives progress and reports whether the collective has completed on this rank.
    func test() throws -> Bool
    /// Blocks (spinning inside MPI) until the collective has completed on this rank.
    func wait() throws
}

/// The group of processes one job runs on. Every rank computes; by convention
/// rank 0 alone writes shared outputs and prints.
///
/// All collectives must be called by every rank, in the same order, with
/// matching element counts where the method says so.
public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// This rank's index among the ranks that share its machine.
    var localRank: Int { get }
    /// How many ranks of the job share this machine (for dividing its cores).
    var localSize: Int { get }
    /// A short description of the transport, for `sccam env`.
    var transportDescription: String { get }

    /// Element-wise sum over all ranks, result on every rank, in place.
    func allreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws
    /// Element-wise maximum over all ranks, result on every rank, in place.
    func allreduceMax<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws
    /// Starts an element-wise sum over all ranks of `send` into `receive`
    /// (out of place: Open MPI's non-blocking ring refuses in-place buffers).
    func startAllreduceSum(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>) throws -> CollectiveRequest
    /// Starts a block exchange: block `j` of `send` (blocks of `BlockPartition(count: send.count)`)
    /// goes to rank `j`; `receive` gets every rank's copy of this rank's block, in rank order.
    func startAlltoallBlocks<T: CollectiveScalar>(send: UnsafeBufferPointer<T>, receive: UnsafeMutableBufferPointer<T>) throws -> CollectiveRequest
    /// Starts an in-place all-gather by blocks: this rank's block of `buffer`
    /// goes to every rank, and every other block arrives from its owner.
    func startAllgatherBlocks<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws -> CollectiveRequest
    /// A communicator of the same ranks whose collectives never match this
    /// one's: the gradient exchange's thread reduces on it while the main
    /// thread may still run collectives here. Collective: every rank calls it.
    func duplicate() throws -> Communicator
    /// Blocking point-to-point transfer of `buffer` to `peer`, which calls
    /// `receive`; for measuring a link.
    func send(_ buffer: UnsafeMutableBufferPointer<UInt8>, to peer: Int) throws
    func receive(_ buffer: UnsafeMutableBufferPointer<UInt8>, from peer: Int) throws
    /// Copies `root`'s buffer into every other rank's buffer (same count everywhere).
    func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws
    func barrier() throws
    /// Variable-length gather: `root` receives every rank's array in rank order,
    /// other ranks receive nil.
    func gather<T: CollectiveScalar>(_ values: [T], root: Int) throws -> [[T]]?
    /// Variable-length all-gather: every rank receives every rank's array in rank order.
    func allgather<T: CollectiveScalar>(_ values: [T]) throws -> [[T]]
    /// Ends the whole job from any rank: prints the message once, with the rank,
    /// and makes every process exit with `exitCode`. Use it when ranks may be
    /// waiting in a collective; a clean error on all ranks can simply return.
    func abort(message: String, exitCode: Int32) -> Never
    /// Shuts the transport down. Idempotent; also run at process exit.
    func finalize()
}

/// The blocks a buffer of `count` elements is split into, one per rank, in
/// rank order, sizes differing by at most one.
public struct BlockPartition: Sendable, Equatable {
    public let count: Int
    public let ranks: Int

    public init(count: Int, ranks: Int) {
        self.count = count
        self.ranks = ranks
    }

    public func start(_ block: Int) -> Int { count / ranks * block + min(block, count % ranks) }
    public func range(_ block: Int) -> Range<Int> { start(block)..<start(block + 1) }
    public func size(_ block: Int) -> Int { range(block).count }
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public func allreduceSum<T: CollectiveScalar>(_ array: inout [T]) throws {
        try array.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    }

    public func allreduceMax<T: CollectiveScalar>(_ array: inout [T]) throws {
        try array.withUnsafeMutableBufferPointer { try allreduceMax($0) }
    }

    public func broadcast<T: CollectiveScalar>(_ array: inout [T], root: Int) throws {
        try array.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    /// Broadcasts a byte blob whose length only `root` knows.
    public func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8] {
        var count: [Int64] = [Int64(bytes.count)]
        try broadcast(&count, root: root)
        var payload = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
        try broadcast(&payload, root: root)
        return payload
    }

    /// Broadcasts a string whose value only `root` knows.
    public func broadcast(string: String, root: Int) throws -> String {
        String(decoding: try broadcast(bytes: Array(string.utf8), root: root), as: UTF8.self)
    }

    /// Gathers one string per rank on `root`, in rank order.
    public func gather(string: String, root: Int) throws -> [String]? {
        try gather(Array(string.utf8), root: root)?.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Every rank's string, in rank order, on every rank.
    public func allgather(string: String) throws -> [String] {
        try allgather(Array(string.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Every rank's lines (messages without newlines), in rank order.
    public func allgather(lines: [String]) throws -> [String] {
        try allgather(string: lines.joined(separator: "\n")).flatMap { $0.split(separator: "\n").map(String.init) }
    }
}
