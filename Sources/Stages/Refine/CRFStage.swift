import Data
import DenseCRF
import Formats
import Foundation
import Workflow

/// `crf`: the dense CRF on one image and its probabilities, exactly as
/// pydensecrf (Krähenbühl's densecrf) computes it: unary -log(clip(p, 1e-5, 1)),
/// a Gaussian and a bilateral kernel through the permutohedral lattice, Potts
/// compatibility; the image's channels in RGB order, as psa loads images.
public enum CRFStage: Stage {
    public static let name = "crf"

    public struct Settings: Codable, Sendable, Equatable {
        /// The image (JPEG or PNG, recognised by content).
        public var image: String
        /// float32 [L, H, W] in [0, 1] for the image's H x W (need not sum to 1 per pixel).
        public var probabilities: String
        /// Where the CRF's output goes, .npy float32 [L, H, W].
        public var output: String
        /// Also the argmax over labels as a VOC-palette PNG (label i in colour i).
        public var labelsOutput: String?
        public var parameters = CRFParameters.psa
        public var iterations = 10

        public init(image: String, probabilities: String, output: String) {
            self.image = image
            self.probabilities = probabilities
            self.output = output
        }
    }

    public struct Result: Codable, Sendable, CustomStringConvertible {
        public let width: Int, height: Int, labels: Int, iterations: Int
        public let parameters: String
        public let seconds: Double
        public let threads: Int
        public let output: String
        public let labelsOutput: String?

        public var description: String {
            String(format: "crf: %dx%d, %d label(s), %d iteration(s), %@: %.3f s on %d thread(s); wrote %@", width, height, labels, iterations,
                   parameters, seconds, threads, output) + (labelsOutput.map { "\nwrote \($0)" } ?? "")
        }
    }

    public static func run(_ settings: Settings, in context: StageContext) throws -> Result {
        let picture = try readImage(settings.image)
        let path = settings.probabilities
        let array = try NPY.read(path)
        guard array.type == .float32, array.shape.count == 3, array.shape[0] >= 1 else {
            throw FormatError(path: path, "holds \(array.type.rawValue) \(array.shape); expected float32 [L, H, W] with L >= 1")
        }
        guard array.shape[1] == picture.height, array.shape[2] == picture.width else {
            throw FormatError(path: path, "is [\(array.shape.map(String.init).joined(separator: ", "))] but \(settings.image) is \(picture.width)x\(picture.height): expected [L, \(picture.height), \(picture.width)]")
        }
        let values: [Float] = try array.values(path: path)
        if let bad = values.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
            throw FormatError(path: path, "value \(values[bad]) at flat index \(bad) is not a probability in [0, 1] (NaN included)")
        }
        let labels = array.shape[0], plane = picture.width * picture.height
        if settings.labelsOutput != nil && labels > 256 {
            throw DataError("a label PNG holds at most 256 labels (\(path) has \(labels)): drop the labels output")
        }
        let start = Date()
        let model = CRFScores.makeCRF(image: picture, parameters: settings.parameters)
        let q = CRFScores.infer(model, stack: values, labels: labels, iterations: settings.iterations)
        let seconds = Date().timeIntervalSince(start)
        try NPY.write(q, shape: array.shape, to: settings.output)
        if let labelsOutput = settings.labelsOutput {
            var argmax = [UInt8](repeating: 0, count: plane)
            for i in 0..<plane {
                var best = 0
                for l in 1..<labels where q[l * plane + i] > q[best * plane + i] { best = l }
                argmax[i] = UInt8(best)
            }
            try PNG.write(IndexedImage(width: picture.width, height: picture.height, indices: argmax, palette: VOCPalette.colors), to: labelsOutput)
        }
        return Result(width: picture.width, height: picture.height, labels: labels, iterations: settings.iterations,
                      parameters: settings.parameters.description, seconds: seconds, threads: context.compute.threads, output: settings.output,
                      labelsOutput: settings.labelsOutput)
    }

    /// JPEG or PNG, recognised by content.
    public static func readImage(_ path: String) throws -> RGBImage {
        let bytes = try AtomicFile.read(path)
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try PNG.decodeRGB(bytes, path: path) }
        if bytes.starts(with: [0xFF, 0xD8]) { return try JPEG.decode(bytes, path: path) }
        throw FormatError(path: path, "is neither a JPEG nor a PNG image")
    }
}
