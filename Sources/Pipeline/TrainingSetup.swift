import Data
import Foundation
import Network

extension Training {
    /// The residual-branch scale of a network trained from scratch.
    public static let scratchBranchScale = 0.1

    /// The classifier a round starts from: the backbone of `initPath` (any
    /// weight format; its width decides the network's) with freshly
    /// Xavier-initialised heads, as the reference starts every round; or,
    /// without a file, He initialisation at `widthDivisor`, with every
    /// residual branch scaled down so the fresh network starts near the
    /// identity (its BatchNorms are frozen; see `initializeBackbone`).
    public static func makeNetwork(initPath: String?, round: Int, k: Int, widthDivisor: Int, seed: UInt64,
                                   warn: (String) -> Void) throws -> SCCAMNetwork {
        guard let initPath else {
            warn("no initial weights: training round \(round) from scratch (He initialisation, residual branches x\(scratchBranchScale)), not from ImageNet as the reference does")
            let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: widthDivisor, round: round, subcategoriesPerClass: k))
            network.initializeBackbone(seed: seed, residualBranchScale: scratchBranchScale)
            network.initializeHeads(seed: seed)
            return network
        }
        let (format, tensors) = try WeightFiles.read(initPath, note: warn)
        let (found, _) = try WeightConversion.configuration(of: tensors, path: initPath)
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: found.widthDivisor, round: round, subcategoriesPerClass: k))
        network.initializeHeads(seed: seed)
        try network.store.load(tensors.filter { !$0.name.hasPrefix("fc8") }, from: "\(initPath) (\(format.rawValue))",
                               allowMissing: { $0.hasPrefix("fc8") })
        return network
    }

    /// The images and per-head targets of a round: round 0 trains on the
    /// image labels of `list`; rounds >= 1 on `sccam cluster`'s sub-category
    /// labels in WORK/labels.
    public static func targets(round: Int, k: Int, dataset: VOCDataset, list: String, work: String, isRoot: Bool,
                               warn: (String) -> Void) throws -> (ids: [String], targets: [[[Float]]]) {
        guard round == 0 else { return try SubcategoryLabels.read("\(work)/labels/R\(round)_subcategories.tsv", k: k) }
        let imageList = try dataset.list(list)
        try dataset.validate(imageList)
        let labels = try ImageLabels.load(dataset: dataset, ids: imageList.ids, cache: isRoot ? "\(work)/image_labels.tsv" : nil, warn: warn)
        return (imageList.ids, [imageList.ids.map { labels.multiHot($0)! }])
    }

    /// SIGTERM and SIGUSR1 back to their default action (end the process),
    /// for stages that resume from their own checkpoints.
    public static func removeSignalHandlers() {
        signal(SIGTERM, SIG_DFL)
        signal(SIGUSR1, SIG_DFL)
    }
}
