/// Pixel pairs within radius 5 on a feature grid (spec 9.1): 34 displacements
/// from each "from" cell. psa's from cells are rows 0..<h-4 and columns
/// 4..<w-4; the whole grid's are every cell.
public struct PairGeometry: Sendable, Equatable {
    public static let radius = 5

    /// Which cells pairs start from.
    public enum Coverage: String, Sendable, Codable, CaseIterable {
        /// psa's set, for training and its random walk: the cells whose 34
        /// targets all lie inside the grid. The walk then connects the 4
        /// border columns on each side and the 4 bottom rows only through
        /// the inner cells, which matters on small grids (a 12 x 12 grid has
        /// 32 from cells of 144).
        case psa
        /// Every cell, with the targets that fall outside the grid left out:
        /// every pair of cells closer than the radius, once. For the walk only.
        case wholeGrid = "whole-grid"
    }

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
    public let coverage: Coverage
    /// "From" cells, row-major.
    public let from: [Int]
    /// The "to" cell of every pair, displacement-major: [34][from.count];
    /// -1 where the target lies outside the grid (whole-grid coverage only).
    public let targets: [Int]

    public init(height: Int, width: Int, coverage: Coverage = .psa) {
        self.height = height
        self.width = width
        self.coverage = coverage
        let margin = Self.radius - 1
        var from: [Int] = []
        switch coverage {
        case .psa:
            if height > margin && width > 2 * margin {
                for y in 0..<(height - margin) {
                    for x in margin..<(width - margin) { from.append(y * width + x) }
                }
            }
        case .wholeGrid:
            from = Array(0..<(height * width))
        }
        self.from = from
        targets = Self.displacements.flatMap { step in
            from.map { cell in
                let y = cell / width + step.dy, x = cell % width + step.dx
                return y < height && x >= 0 && x < width ? y * width + x : -1
            }
        }
    }

    public var pairsPerDisplacement: Int { from.count }
    public var pairCount: Int { Self.displacements.count * from.count }

    /// The "to" cell of displacement `d` from the k-th from cell (-1: none).
    @inline(__always)
    public func to(_ d: Int, _ k: Int) -> Int { targets[d * from.count + k] }
}
