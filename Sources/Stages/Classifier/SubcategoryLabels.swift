import Data
import Foundation
import Workflow

/// Reads the cluster stage's tsv back into training targets.
public enum SubcategoryLabels {
    /// Image ids and, per image, its parent-class and (classes x k)-class multi-hot targets.
    public static func read(_ path: String, k: Int, classes: Int = VOCClasses.count) throws -> (ids: [String], targets: [[[Float]]]) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DataError("\(path): cannot read the sub-category labels; run `sccam cluster` for this round first")
        }
        var ids: [String] = [], parents: [[Float]] = [], subs: [[Float]] = []
        for (number, line) in text.split(separator: "\n").enumerated() where !line.hasPrefix("#") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 3 else { throw DataError("\(path):\(number + 1): expected id, classes and sub-categories") }
            var parent = [Float](repeating: 0, count: classes), sub = [Float](repeating: 0, count: classes * k)
            for c in fields[1].split(separator: ",") {
                guard let c = Int(c), (0..<classes).contains(c) else { throw DataError("\(path):\(number + 1): bad class '\(c)'") }
                parent[c] = 1
            }
            for s in fields[2].split(separator: ",") {
                guard let s = Int(s), (0..<(classes * k)).contains(s), parent[s / k] == 1 else {
                    throw DataError("\(path):\(number + 1): sub-category '\(s)' does not fit k = \(k) and the image's classes")
                }
                sub[s] = 1
            }
            ids.append(String(fields[0]))
            parents.append(parent)
            subs.append(sub)
        }
        return (ids, [parents, subs])
    }
}
