import Data
import Distributed
import Formats
import Foundation
import Network
import Workflow

/// `refine`: psa's `infer_aff.py` for every image of a list. The
/// normalised image, zero-padded on the right and bottom to multiples of 8,
/// goes through AffinityNet at native size; its pair affinities drive the
/// random walk (`RandomWalk`) of the image's saved CAMs. Each rank takes a
/// contiguous part of the list and writes, per image and atomically:
/// - `refine/{id}.png`: 8-bit grey class ids, 0 = background, c + 1 = class c (as psa writes them);
/// - `refine_color/{id}.png`: the same in the VOC palette;
/// - `refine_overlays/{id}.png`: the image beside the labels blended over it.
/// Images whose grey PNG exists are skipped, so a killed run resumes.
public enum RefineStage: Stage {
    public static let name = "refine"

    public struct Settings: Codable, Sendable, Equatable {
        /// AffinityNet: `train-aff`'s safetensors or psa's resnet38_aff state dict (.pth).
        public var affinityWeights: String
        /// The CAM stacks to walk ({id}.npy and {id}.classes.npy).
        public var cams: String
        public var list = "train"
        public var walk = RandomWalk.Parameters()
        public var overlays = true

        public init(affinityWeights: String, cams: String) {
            self.affinityWeights = affinityWeights
            self.cams = cams
        }
    }

    public typealias Result = ImagePassResult

    public static func run(_ settings: Settings, in context: StageContext) throws -> ImagePassResult {
        try requireSetting(settings.walk.alpha > 0 && settings.walk.beta > 0, "--alpha and --beta must be positive")
        try requireSetting((0...12).contains(settings.walk.logT), "--logt must be 0 to 12 (the walk takes 2^logt steps)")
        let dataset = try context.requireDataset(for: name)
        let list = try dataset.list(settings.list)
        try dataset.validate(list)
        let network = try AffinityNetwork.fromWeights(settings.affinityWeights, compute: context.compute, note: context.warn)
        let walk = settings.walk
        context.log("refine: \(list.ids.count) images of \(list.source), AffinityNet from \(settings.affinityWeights) (width 1/\(network.widthDivisor)), alpha \(walk.alpha), beta \(walk.beta), \(1 << walk.logT) steps, \(walk.pairs.rawValue) pairs, on \(context.communicator.size) rank(s)")
        let folders = context.layout.pseudoLabels
        return ImagePassResult(try ImageStage.run(
            dataset: dataset, list: list, skipUnreadable: context.runtime.skipUnreadable, communicator: context.communicator, log: context.log,
            isDone: { FileManager.default.fileExists(atPath: folders.labels.png($0)) },
            read: { id, image in
                try CRFScores.readCAMs(folder: settings.cams, id: id, width: image.width, height: image.height, classes: dataset.classCount)
            }) { id, image, cams in
            let result = labels(network: network, image: image, cams: cams, walk: walk, classes: dataset.classCount)
            try PNG.write(IndexedImage(width: image.width, height: image.height, indices: result, palette: VOCPalette.colors),
                          to: folders.colour.png(id))
            if settings.overlays, let overlays = folders.overlays {
                try PNG.write(overlay(image: image, labels: result), to: overlays.png(id))
            }
            // The grey PNG last: its presence marks the image done.
            try PNG.write(IndexedImage(width: image.width, height: image.height, indices: result), to: folders.labels.png(id))
        })
    }

    /// AffinityNet's pair affinities [34][pairs] of an image, on the grid of `RandomWalk.Geometry`.
    public static func affinities(network: AffinityNetwork, image: RGBImage) -> [Float] {
        let g = RandomWalk.Geometry(height: image.height, width: image.width)
        let tensor = Normalization.chw(image)
        var padded = [Float](repeating: 0, count: 3 * g.paddedHeight * g.paddedWidth)
        for c in 0..<3 {
            for y in 0..<image.height {
                for x in 0..<image.width {
                    padded[(c * g.paddedHeight + y) * g.paddedWidth + x] = tensor[(c * image.height + y) * image.width + x]
                }
            }
        }
        let output = padded.withUnsafeBufferPointer {
            Array(network.forward(input: $0.baseAddress!, batch: 1, height: g.paddedHeight, width: g.paddedWidth))
        }
        precondition(network.pairs.height == g.gridHeight && network.pairs.width == g.gridWidth
                     && network.pairs.coverage == network.inferencePairCoverage)
        return output
    }

    /// The refined label of every pixel of an image, from its CAMs.
    public static func labels(network: AffinityNetwork, image: RGBImage, cams: CRFScores.CAMs,
                              walk parameters: RandomWalk.Parameters, classes: Int = VOCClasses.count) -> [UInt8] {
        let g = RandomWalk.Geometry(height: image.height, width: image.width)
        let pooled = RandomWalk.pooledScores(cams: cams.maps, classes: cams.classes, geometry: g, alpha: parameters.alpha,
                                             classCount: classes)
        network.inferencePairCoverage = parameters.pairs
        let pairAffinities = affinities(network: network, image: image)
        // The network planned these pairs for this grid; no need to build them again.
        let transition = RandomWalk.transition(affinities: pairAffinities, pairs: network.pairs, beta: parameters.beta)
        let walked = RandomWalk.walk(pooled, channels: classes + 1, transition: transition, logT: parameters.logT)
        return RandomWalk.labels(walked: walked, channels: classes + 1, geometry: g)
    }

    /// The image beside its labels in the VOC palette blended over it (2:1).
    public static func overlay(image: RGBImage, labels: [UInt8]) -> RGBImage {
        let (w, h) = (image.width, image.height)
        var out = RGBImage(width: 2 * w, height: h)
        let palette = VOCPalette.colors
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x, label = Int(labels[i])
                for c in 0..<3 {
                    let pixel = Int(image.pixels[3 * i + c])
                    out.pixels[3 * (y * 2 * w + x) + c] = UInt8(pixel)
                    let color = label == 0 ? pixel : Int(palette[3 * label + c])
                    out.pixels[3 * (y * 2 * w + w + x) + c] = UInt8((pixel + 2 * color) / 3)
                }
            }
        }
        return out
    }
}
