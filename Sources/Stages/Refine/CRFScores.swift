import Data
import DenseCRF
import Formats
import Foundation
import Workflow

/// The CRF score stacks psa makes from an image's CAMs (spec 9.2, psa's
/// `_crf_with_alpha`): `[(1 - max CAM)^alpha, CAMs of the present classes]`
/// through the dense CRF on the original image.
public enum CRFScores {
    /// An image's saved CAMs (`sccam infer`'s `cams/{id}.npy` and `.classes.npy`).
    public struct CAMs: Sendable {
        public let classes: [Int]
        /// [classes.count][height][width]
        public let maps: [Float]
        public let width: Int
        public let height: Int

        public init(classes: [Int], maps: [Float], width: Int, height: Int) {
            precondition(maps.count == classes.count * width * height, "CAMs must be [\(classes.count), \(height), \(width)]")
            self.classes = classes
            self.maps = maps
            self.width = width
            self.height = height
        }
    }

    /// Reads and checks `folder/{id}.npy` and `folder/{id}.classes.npy` for an image of `width` x `height`.
    public static func readCAMs(folder: String, id: String, width: Int, height: Int, classes classCount: Int = VOCClasses.count) throws -> CAMs {
        let mapsPath = ImageFolder(folder).npy(id), classesPath = ImageFolder(folder).classes(id)
        let classArray = try NPY.read(classesPath)
        let classes: [Int]
        switch classArray.type {
        case .int32: classes = try classArray.values(as: Int32.self, path: classesPath).map(Int.init)
        case .int64: classes = try classArray.values(as: Int64.self, path: classesPath).map(Int.init)
        default: throw FormatError(path: classesPath, "holds \(classArray.type.rawValue) values; class ids are int32 or int64")
        }
        guard classArray.shape.count == 1, classes.allSatisfy({ (0..<classCount).contains($0) }),
              Set(classes).count == classes.count else {
            throw FormatError(path: classesPath, "must list distinct class ids 0-\(classCount - 1) (sccam infer writes it beside the CAMs)")
        }
        let array = try NPY.read(mapsPath)
        guard array.type == .float32, array.shape == [classes.count, height, width] else {
            throw FormatError(path: mapsPath, """
                holds \(array.type.rawValue) \(array.shape), but its image is \(width)x\(height) with \(classes.count) class(es): \
                expected float32 [\(classes.count), \(height), \(width)]; rerun sccam infer for this image
                """)
        }
        let maps: [Float] = try array.values(path: mapsPath)
        guard maps.allSatisfy({ $0.isFinite }) else { throw FormatError(path: mapsPath, "holds NaN or infinite values") }
        return CAMs(classes: classes, maps: maps, width: width, height: height)
    }

    /// `[(1 - max_c CAM_c)^alpha, CAM_0, ...]`, [1 + C][H][W], in float32 as NumPy computes it.
    public static func backgroundStack(_ cams: CAMs, alpha: Float) -> [Float] {
        let plane = cams.width * cams.height, count = cams.classes.count
        var stack = [Float](repeating: 0, count: (1 + count) * plane)
        for i in 0..<plane {
            var largest: Float = count == 0 ? 0 : cams.maps[i]
            for c in 0..<count where cams.maps[c * plane + i] > largest { largest = cams.maps[c * plane + i] }
            stack[i] = powf(1 - largest, alpha)
        }
        for c in 0..<(count * plane) { stack[plane + c] = cams.maps[c] }
        return stack
    }

    /// The CRF of an image (RGB bytes in PIL's order) built once, for several stacks.
    public static func makeCRF(image: RGBImage, parameters: CRFParameters = .psa) -> DenseCRF {
        image.pixels.withUnsafeBufferPointer { DenseCRF(rgb: $0.baseAddress!, width: image.width, height: image.height, parameters: parameters) }
    }

    /// The CRF scores of `stack`, [labels][H][W].
    public static func infer(_ crf: DenseCRF, stack: [Float], labels: Int, iterations: Int = 10,
                             workspace: CRFWorkspace? = nil) -> [Float] {
        var scores = [Float](repeating: 0, count: stack.count)
        scores.withUnsafeMutableBufferPointer { out in
            crf.inference(probabilities: stack, labels: labels, iterations: iterations, output: out.baseAddress!, workspace: workspace)
        }
        return scores
    }

    /// A VOC class-id mask from CRF scores over `[background, classes...]`:
    /// the argmax (first of equal maxima), 0 = background, c + 1 = class c.
    public static func mask(scores: [Float], classes: [Int], plane: Int) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: plane)
        for i in 0..<plane {
            var best = 0, value = scores[i]
            for c in 0..<classes.count where scores[(c + 1) * plane + i] > value {
                best = c + 1
                value = scores[(c + 1) * plane + i]
            }
            mask[i] = best == 0 ? 0 : UInt8(classes[best - 1] + 1)
        }
        return mask
    }
}
