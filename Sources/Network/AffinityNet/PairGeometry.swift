/// psa's pixel pairs within radius 5 on a feature grid (spec 9.1): 34
/// displacements, "from" cells in rows 0..<h-4 and columns 4..<w-4.
public struct PairGeometry: Sendable, Equatable {
    public static let radius = 5

    /// The 34 displacements (dy, dx) of radius 5, in psa's order: (0, 1...4),
    /// then for dy = 1...4 every dx with dx^2 + dy^2 < 25, from -4 up.
    public static let displacements: [(dy: Int, dx: Int)] = {
        var list = (1..<radius).map { (dy: 0, dx: $0) }
        for dy in 1..<radius {
            for dx in (1 - radius)..<radius where dx * dx + dy * dy < radius * radius { list.append((dy, dx)) }
        }
        return list
    }()

    public let height: Int, width: Int
    /// "From" cells, row-major.
    public let from: [Int]
    /// The "to" cell of every pair, displacement-major: [34][from.count].
    public let targets: [Int]

    public init(height: Int, width: Int) {
        self.height = height
        self.width = width
        let margin = Self.radius - 1
        var from: [Int] = []
        if height > margin && width > 2 * margin {
            for y in 0..<(height - margin) {
                for x in margin..<(width - margin) { from.append(y * width + x) }
            }
        }
        self.from = from
        targets = Self.displacements.flatMap { step in from.map { $0 + step.dy * width + step.dx } }
    }

    public var pairsPerDisplacement: Int { from.count }
    public var pairCount: Int { Self.displacements.count * from.count }

    /// The "to" cell of displacement `d` from the k-th from cell.
    @inline(__always)
    public func to(_ d: Int, _ k: Int) -> Int { targets[d * from.count + k] }
}
