/// The lattice's vertices: an open-addressing hash table from a vertex's
/// stored coordinates (d Int16, the last one is implied) to its id, ids
/// given in first-insertion order from 1 (row 0 of every buffer is the
/// "absent" vertex, which reads as zero). Raw buffers: this is the one
/// sequential loop of lattice construction.
final class VertexTable {
    let dimension: Int
    private var capacity: Int
    private var slots: UnsafeMutablePointer<Int32>  // id, 0 = empty
    /// `dimension` coordinates per id; id 0 unused.
    private(set) var keys: UnsafeMutablePointer<Int16>
    private var keyCapacity: Int
    private(set) var count = 0

    init(dimension: Int, expectedCount: Int) {
        self.dimension = dimension
        capacity = 16
        while capacity < 2 * expectedCount { capacity <<= 1 }
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: 0, count: capacity)
        keyCapacity = max(16, expectedCount + 1)
        keys = .allocate(capacity: keyCapacity * dimension)
        keys.initialize(repeating: 0, count: dimension)
    }

    deinit {
        slots.deallocate()
        keys.deallocate()
    }

    @inline(__always)
    private func hash(_ key: UnsafePointer<Int16>) -> Int {
        var h: UInt64 = 0
        for k in 0..<dimension { h = (h &+ UInt64(UInt16(bitPattern: key[k]))) &* 0x9E37_79B9_7F4A_7C15 }
        return Int(truncatingIfNeeded: h >> 20)
    }

    @inline(__always)
    private func matches(_ id: Int32, _ key: UnsafePointer<Int16>) -> Bool {
        let stored = keys + Int(id) * dimension
        for k in 0..<dimension where stored[k] != key[k] { return false }
        return true
    }

    /// The id of `key`, inserted if new.
    func insert(_ key: UnsafePointer<Int16>) -> Int32 {
        if 2 * (count + 1) > capacity { grow() }
        var slot = hash(key) & (capacity - 1)
        while true {
            let id = slots[slot]
            if id == 0 {
                count += 1
                if count + 1 > keyCapacity {
                    let larger = UnsafeMutablePointer<Int16>.allocate(capacity: 2 * keyCapacity * dimension)
                    larger.moveInitialize(from: keys, count: count * dimension)
                    keys.deallocate()
                    keys = larger
                    keyCapacity *= 2
                }
                (keys + count * dimension).initialize(from: key, count: dimension)
                slots[slot] = Int32(count)
                return Int32(count)
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

    private func grow() {
        slots.deallocate()
        capacity <<= 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: 0, count: capacity)
        for id in stride(from: 1, through: count, by: 1) {
            var slot = hash(keys + id * dimension) & (capacity - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            slots[slot] = Int32(id)
        }
    }
}
