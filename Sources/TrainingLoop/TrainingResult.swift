/// What a training stage did, as run.json records it and the command prints it.
public struct TrainingResult: Codable, Sendable {
    public let steps: Int
    public let firstLoss: Double
    public let lastLoss: Double
    /// The checkpoints written, without extension.
    public let checkpoints: [String]
    /// Time the main thread waited for gradient sums after backward.
    public let waitSeconds: Double
    public let seconds: Double

    public init(_ summary: Training.Summary) {
        steps = summary.steps
        firstLoss = summary.firstLoss
        lastLoss = summary.lastLoss
        checkpoints = summary.checkpoints
        waitSeconds = summary.communicationWaitSeconds
        seconds = summary.seconds
    }

    enum CodingKeys: String, CodingKey {
        case steps, firstLoss = "first_loss", lastLoss = "last_loss", checkpoints, waitSeconds = "wait_seconds", seconds
    }

    /// "trained 3 step(s) in 1.2 s: loss 0.6931 -> 0.5012; waited 0.01 s for gradient allreduces"
    public func described(unit: String = "step") -> String {
        String(format: "trained %d %@(s) in %.1f s: loss %.4f -> %.4f; waited %.2f s for gradient allreduces", steps, unit, seconds,
               firstLoss, lastLoss, waitSeconds)
    }
}
