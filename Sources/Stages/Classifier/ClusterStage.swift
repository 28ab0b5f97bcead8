import Foundation
import Workflow

/// `cluster` (spec 5): sub-categories for a round from the previous round's
/// features, by per-class k-means as scikit-learn runs it for the reference.
public enum ClusterStage: Stage {
    public static let name = "cluster"

    public struct Settings: Codable, Sendable, Equatable {
        /// The round these labels are for (features come from round - 1).
        public var round = 1
        /// Sub-categories per class.
        public var k = 10
        /// k-means restarts per class; the lowest inertia wins.
        public var restarts = 10
        /// scikit-learn's random_state; the reference uses 0.
        public var seed: UInt64 = 0
        public var strategy = SubcategoryClustering.Strategy.points
        /// Features, ids and labels from elsewhere than WORK/features/R{round - 1}_*.
        public var inputs: SubcategoryClustering.Inputs?
        /// The output folder when not WORK/labels.
        public var output: String?

        public init(round: Int = 1) { self.round = round }
    }

    public typealias Result = SubcategoryClustering.Report

    public static func run(_ settings: Settings, in context: StageContext) throws -> Result {
        try requireSetting(settings.k >= 1 && settings.restarts >= 1 && settings.round >= 1, "--k, --n-init and --round must be at least 1")
        let features = context.layout.features(round: settings.round - 1)
        let inputs = settings.inputs
            ?? SubcategoryClustering.Inputs(features: features.features, images: features.images, labels: features.labels)
        return try SubcategoryClustering.run(
            inputs: inputs, round: settings.round, k: settings.k, restarts: settings.restarts, seed: settings.seed,
            strategy: settings.strategy, output: context.layout.subcategories(round: settings.round, in: settings.output),
            communicator: context.communicator, log: context.log, warn: context.warn)
    }
}

extension SubcategoryClustering.Report: CustomStringConvertible {
    public var description: String {
        String(format: "clustered %d images into %d sub-categories per class in %.2f s (%@ strategy)", images, k, seconds, strategy)
    }
}
