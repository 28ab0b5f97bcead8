/// The lattice's vertices: an open-addressing hash table from a vertex's
/// stored coordinates (d Int16, the last one is implied) to its id, ids
/// given in first-insertion order from 1 (row 0 of every buffer is the
/// "absent" vertex, which reads as zero).
struct VertexTable {
    let dimension: Int
    private var capacity: Int
    private var slots: [Int32]  // id, 0 = empty
    private(set) var keys: [Int16]  // dimension per id, id 0 unused
    var count: Int { keys.count / dimension - 1 }

    init(dimension: Int, expectedCount: Int) {
        self.dimension = dimension
        capacity = 16
        while capacity < 2 * expectedCount { capacity <<= 1 }
        slots = [Int32](repeating: 0, count: capacity)
        keys = [Int16](repeating: 0, count: dimension)
        keys.reserveCapacity(dimension * (expectedCount + 1))
    }

    private func hash(_ key: UnsafePointer<Int16>) -> Int {
        var h: UInt64 = 0
        for k in 0..<dimension { h = (h &+ UInt64(UInt16(bitPattern: key[k]))) &* 0x9E37_79B9_7F4A_7C15 }
        return Int(truncatingIfNeeded: h >> 20)
    }

    private func matches(_ id: Int32, _ key: UnsafePointer<Int16>) -> Bool {
        keys.withUnsafeBufferPointer { stored in
            let base = Int(id) * dimension
            for k in 0..<dimension where stored[base + k] != key[k] { return false }
            return true
        }
    }

    /// The id of `key`, inserted if new.
    mutating func insert(_ key: UnsafePointer<Int16>) -> Int32 {
        if 2 * (count + 1) > capacity { grow() }
        var slot = hash(key) & (capacity - 1)
        while true {
            let id = slots[slot]
            if id == 0 {
                let newID = Int32(count + 1)
                for k in 0..<dimension { keys.append(key[k]) }
                slots[slot] = newID
                return newID
            }
            if matches(id, key) { return id }
            slot = (slot + 1) & (capacity - 1)
        }
    }

    /// The id of `key`, or 0 when the lattice has no such vertex.
    func find(_ key: UnsafePointer<Int16>) -> Int32 {
        var slot = hash(key) & (capacity - 1)
        while true {
            let id = slots[slot]
            if id == 0 || matches(id, key) { return id }
            slot = (slot + 1) & (capacity - 1)
        }
    }

    private mutating func grow() {
        capacity <<= 1
        slots = [Int32](repeating: 0, count: capacity)
        keys.withUnsafeBufferPointer { stored in
            for id in 1...max(1, count) where count > 0 {
                var slot = hash(stored.baseAddress! + id * dimension) & (capacity - 1)
                while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
                slots[slot] = Int32(id)
            }
        }
    }
}
