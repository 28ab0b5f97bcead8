import Data

/// Every file and folder a run writes into its work folder, by name: no
/// other code builds a work-folder path. The layout (WORK = `root`):
///
///     run.json                         the pipeline's record: settings, stages, results
///     voc/, coco/                      `sccam demo`'s synthetic dataset
///     report.html                      `sccam report`
///     image_labels.tsv                 the image-level labels, cached
///     weights/{R0..R3,AFF,SEG}_ep{e}   checkpoints (.safetensors, .state.safetensors), {prefix}_partial on a stop
///     weights/SEG_final.safetensors    the pipeline's segmentation network
///     logs/metrics.jsonl, logs/{prefix}/   training metrics, TensorBoard events
///     features/R{r}_features.npy, _images.txt, _labels.npy   (and each rank's .R{r}_rank{i}_of_{n}.part.npy)
///     labels/R{r}_subcategories.tsv, .npy, R{r}_report.json
///     infer/R{r}/ (and infer/R{r}_affinity/)   a `CAMFolder`: cams/, masks/, masks_sub/, masks_crf/, overlays/, scores.json
///     affinity/{id}.npy, {id}.classes.npy      CRF score stacks
///     refine/, refine_color/, refine_overlays/ pseudo-labels (`LabelFolders`), refine/scores.json
///     segment/, segment_color/, segment_overlays/, segment_crf/, segment_crf_color/
///
/// `sccam infer` writes a `CAMFolder` straight into its --work (`camOutputs`).
public struct WorkLayout: Sendable, Equatable {
    public let root: String

    public init(_ root: String) { self.root = root }

    /// A path under the work folder from its name relative to it (as run.json records outputs).
    public func path(_ relative: String) -> String { "\(root)/\(relative)" }

    /// The name of `path` relative to the work folder (the path itself when it lies elsewhere).
    public func relative(_ path: String) -> String {
        path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
    }

    // MARK: The run

    public var runRecord: String { path("run.json") }
    /// `sccam demo`'s synthetic VOC-layout dataset.
    public func demoDataset(_ kind: DatasetKind = .voc) -> String { path(kind.rawValue) }
    public var report: String { path("report.html") }
    public var imageLabelCache: String { path("image_labels.tsv") }
    /// The shared-folder check's token (`WorkFolder`).
    public func sharedCheckToken(pid: Int32) -> String { path(".sccam-shared-check-\(pid)") }

    // MARK: Training

    public var weights: String { path("weights") }
    /// A checkpoint without its extension: `{prefix}_ep{epoch}` (+ .safetensors, .state.safetensors).
    public func checkpoint(_ prefix: String, epoch: Int) -> String { "\(weights)/\(prefix)_ep\(epoch)" }
    /// The checkpoint a requested stop writes.
    public func partialCheckpoint(_ prefix: String) -> String { "\(weights)/\(prefix)_partial" }
    /// Checkpoints of `prefix` that hold a state file, as (path without extension, file name).
    public func checkpointStates(_ prefix: String, names: [String]) -> [String] {
        let suffix = Self.stateSuffix
        return names.filter { $0.hasPrefix("\(prefix)_") && $0.hasSuffix(suffix) }.map { "\(weights)/\($0.dropLast(suffix.count))" }
    }
    public static let stateSuffix = ".state.safetensors"
    public static let weightsSuffix = ".safetensors"
    /// A classifier round's checkpoint prefix: R0 (the baseline) ... R3.
    public static func roundPrefix(_ round: Int) -> String { "R\(round)" }
    public static let affinityPrefix = "AFF"
    public static let segmentationPrefix = "SEG"
    /// The weights of a round's classifier after `epoch`.
    public func classifierWeights(round: Int, epoch: Int) -> String { checkpoint(Self.roundPrefix(round), epoch: epoch) + ".safetensors" }
    public func affinityWeights(epoch: Int) -> String { checkpoint(Self.affinityPrefix, epoch: epoch) + ".safetensors" }
    /// The pipeline's trained segmentation network.
    public var segmentationWeights: String { "\(weights)/\(Self.segmentationPrefix)_final.safetensors" }

    public var logs: String { path("logs") }
    public var metricsLog: String { "\(logs)/metrics.jsonl" }
    public func tensorBoardLogs(_ prefix: String) -> String { "\(logs)/\(prefix)" }

    // MARK: Features and sub-categories

    public struct FeatureFiles: Sendable, Equatable {
        /// float32 [N, D], list order.
        public let features: String
        /// The ids of the rows, one per line.
        public let images: String
        /// The image-level labels, [N, 20].
        public let labels: String
        public var all: [String] { [features, images, labels] }
    }

    public var features: String { path("features") }
    public func features(round: Int) -> FeatureFiles {
        FeatureFiles(features: "\(features)/R\(round)_features.npy", images: "\(features)/R\(round)_images.txt",
                     labels: "\(features)/R\(round)_labels.npy")
    }
    /// One rank's finished part of an extraction, for resume.
    public func featureShard(round: Int, rank: Int, size: Int) -> String {
        "\(features)/.R\(round)_rank\(rank)_of_\(size).part.npy"
    }

    public struct SubcategoryFiles: Sendable, Equatable {
        public let table: String, multiHot: String, report: String
        public var all: [String] { [table, multiHot, report] }
    }

    public var labels: String { path("labels") }
    /// `sccam cluster`'s output for `round` in `folder` (default: WORK/labels).
    public func subcategories(round: Int, in folder: String? = nil) -> SubcategoryFiles {
        let folder = folder ?? labels
        return SubcategoryFiles(table: "\(folder)/R\(round)_subcategories.tsv", multiHot: "\(folder)/R\(round)_subcategories.npy",
                                report: "\(folder)/R\(round)_report.json")
    }

    // MARK: CAMs, affinity labels, pseudo-labels, segmentation

    public var inference: String { path("infer") }
    /// The pipeline's CAMs of a round on its inference list.
    public func inference(round: Int) -> CAMFolder { CAMFolder("\(inference)/R\(round)") }
    /// The CAMs of AffinityNet's training images, when that list is not the inference list.
    public func affinityInference(round: Int) -> CAMFolder { CAMFolder("\(inference)/R\(round)_affinity") }
    /// The rounds whose CAMs are in `infer/`, from its folder names.
    public static func inferredRound(folderName: String) -> Int? {
        folderName.hasPrefix("R") ? Int(folderName.dropFirst()) : nil
    }
    /// A benchmark's work folder for a run on `ranks` ranks, inside the benchmark's own folder.
    public func benchmarkRun(ranks: Int) -> WorkLayout { WorkLayout(path("work-\(ranks)")) }

    /// `sccam infer`'s outputs: the work folder itself.
    public var camOutputs: CAMFolder { CAMFolder(root) }

    public var affinityLabels: ImageFolder { ImageFolder(path("affinity")) }
    public var pseudoLabels: LabelFolders { LabelFolders(root: root, name: "refine", overlays: true) }
    public func segmentation(crf: Bool) -> LabelFolders {
        crf ? LabelFolders(root: root, name: "segment_crf", overlays: false) : LabelFolders(root: root, name: "segment", overlays: true)
    }
}

/// A folder of per-image files named by image id: `{path}/{id}{suffix}`.
public struct ImageFolder: Sendable, Equatable {
    public let path: String
    public init(_ path: String) { self.path = path }
    public func file(_ id: String, _ suffix: String) -> String { "\(path)/\(id)\(suffix)" }
    public func png(_ id: String) -> String { file(id, ".png") }
    public func npy(_ id: String) -> String { file(id, ".npy") }
    /// The classes of a per-image stack: `{id}.classes.npy`.
    public func classes(_ id: String) -> String { file(id, ".classes.npy") }
    /// A file beside the per-image ones (scores.json).
    public func member(_ name: String) -> String { "\(path)/\(name)" }
}

/// What `infer` writes for one classifier: CAMs and their masks.
public struct CAMFolder: Sendable, Equatable {
    public let root: String
    public init(_ root: String) { self.root = root }
    /// {id}.npy, float32 [C, H, W] for the C present classes, and {id}.classes.npy.
    public var cams: ImageFolder { ImageFolder("\(root)/cams") }
    public var masks: ImageFolder { ImageFolder("\(root)/masks") }
    public var subcategoryMasks: ImageFolder { ImageFolder("\(root)/masks_sub") }
    public var crfMasks: ImageFolder { ImageFolder("\(root)/masks_crf") }
    public var overlays: ImageFolder { ImageFolder("\(root)/overlays") }
    public var scores: String { "\(root)/scores.json" }
}

/// Per-pixel labels as grey class ids, with a palette copy and overlays
/// beside them: `{name}/`, `{name}_color/`, `{name}_overlays/`.
public struct LabelFolders: Sendable, Equatable {
    public let labels: ImageFolder
    public let colour: ImageFolder
    public let overlays: ImageFolder?
    init(root: String, name: String, overlays: Bool) {
        labels = ImageFolder("\(root)/\(name)")
        colour = ImageFolder("\(root)/\(name)_color")
        self.overlays = overlays ? ImageFolder("\(root)/\(name)_overlays") : nil
    }
    /// Their scores, beside the labels.
    public var scores: String { labels.member("scores.json") }
}
