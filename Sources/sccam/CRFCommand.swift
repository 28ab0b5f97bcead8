import ArgumentParser
import DenseCRF
import Formats
import Foundation
import Pipeline

struct CRF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crf",
        abstract: "Run the dense CRF on one image and its probabilities.",
        discussion: """
            Mean-field inference in a fully connected CRF exactly as pydensecrf (Krähenbühl's \
            densecrf) computes it: unary -log(clip(p, 1e-5, 1)), a Gaussian and a bilateral kernel \
            through the permutohedral lattice, Potts compatibility. The image's channels are used in \
            RGB order, as psa loads images. The probabilities need not sum to 1 per pixel (psa's \
            affinity-label stacks do not).
            """)

    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "The image (JPEG or PNG).")
    var image: String

    @Option(help: "Probabilities: .npy float32 [L, H, W] in [0, 1], for the image's H x W.")
    var probs: String

    @Option(help: "Where to write the CRF's output, .npy float32 [L, H, W] (atomically).")
    var out: String

    @OptionGroup var crf: CRFOptions

    @Option(help: "Also write the argmax over labels as a VOC-palette PNG (label i in colour i).")
    var labelsOut: String?

    func run() throws {
        let job = Job.start(runtime)
        job.run {
            let picture = try Self.readImage(image)
            let array = try NPY.read(probs)
            guard array.type == .float32, array.shape.count == 3, array.shape[0] >= 1 else {
                throw FormatError(path: probs, "holds \(array.type.rawValue) \(array.shape); expected float32 [L, H, W] with L >= 1")
            }
            guard array.shape[1] == picture.height, array.shape[2] == picture.width else {
                throw FormatError(path: probs, "is [\(array.shape.map(String.init).joined(separator: ", "))] but \(image) is \(picture.width)x\(picture.height): expected [L, \(picture.height), \(picture.width)]")
            }
            let values: [Float] = try array.values(path: probs)
            if let bad = values.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
                throw FormatError(path: probs, "value \(values[bad]) at flat index \(bad) is not a probability in [0, 1] (NaN included)")
            }
            let labels = array.shape[0], plane = picture.width * picture.height
            let parameters = try crf.parameters()
            let start = Date()
            let model = CRFScores.makeCRF(image: picture, parameters: parameters)
            let q = CRFScores.infer(model, stack: values, labels: labels, iterations: crf.iterations)
            try NPY.write(q, shape: array.shape, to: out)
            job.log(String(format: "crf: %dx%d, %d label(s), %d iteration(s), %@: %.3f s on %d thread(s); wrote %@",
                           picture.width, picture.height, labels, crf.iterations, parameters.description,
                           Date().timeIntervalSince(start), job.threads.count, out))
            if let labelsOut {
                guard labels <= 256 else { throw ValidationError("--labels-out needs at most 256 labels (got \(labels))") }
                var argmax = [UInt8](repeating: 0, count: plane)
                for i in 0..<plane {
                    var best = 0
                    for l in 1..<labels where q[l * plane + i] > q[best * plane + i] { best = l }
                    argmax[i] = UInt8(best)
                }
                try PNG.write(IndexedImage(width: picture.width, height: picture.height, indices: argmax, palette: VOCPalette.colors), to: labelsOut)
                job.log("wrote \(labelsOut)")
            }
        }
    }

    /// JPEG or PNG, recognised by content.
    static func readImage(_ path: String) throws -> RGBImage {
        let bytes = try AtomicFile.read(path)
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try PNG.decodeRGB(bytes, path: path) }
        if bytes.starts(with: [0xFF, 0xD8]) { return try JPEG.decode(bytes, path: path) }
        throw FormatError(path: path, "is neither a JPEG nor a PNG image")
    }
}
