import ArgumentParser
import Pipeline

/// How a training command sums gradients across ranks.
struct ExchangeOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Gradient wire format between ranks: fp32 (default) or bf16.",
        discussion: """
            fp32 sends float32: a run on N ranks equals a 1-rank run with the same global batch up to \
            the order of float32 additions (tested within 1e-5). bf16 sends bfloat16, half the bytes, and still \
            sums in float32: every rank's contribution and every sum are rounded to bfloat16 once (relative \
            error at most 2^-8 each), so each step's update differs from a 1-rank run's by up to about 2^-7 \
            (tested: within 3% of what 3 steps move the weights, 0.95% measured); on the demo every score \
            moves by up to 0.07 either way, within its seed-to-seed spread (docs/decisions.md). Worth it where the link, not the CPU, limits the step: below 10 Gbit/s \
            at full width. A single rank sends nothing and ignores it.
            """,
        valueName: "fp32|bf16"))
    var gradientExchange: GradientWireFormat = .fp32

    @Option(help: ArgumentHelp(
        "Megabytes of float32 gradients per exchanged bucket.",
        discussion: """
            Backward hands the tail of the gradient buffer to the exchange thread as soon as a bucket's worth is \
            final; each bucket is one collective. Default from `sccam bench allreduce` (docs/scaling.md).
            """))
    var bucketMb: Int = GradientExchange.Settings.defaultBucketBytes >> 20

    @Option(help: ArgumentHelp(
        "How the exchange thread waits for a bucket: polled (default) or blocking.",
        discussion: """
            polled starts non-blocking collectives and tests them about 20 times per bucket, asleep in between, \
            so the core stays with the computation. blocking calls MPI_Allreduce, inside which Open MPI \
            spins: on a core that compute shares it takes about half the core while the transfer lasts \
            (docs/scaling.md has both measured).
            """,
        valueName: "polled|blocking"))
    var exchangeProgress: ExchangeProgress = .polled

    @Option(name: .customLong("exchange-poll-us"), help: ArgumentHelp(
        "Fixed microseconds between tests of a polled collective (default: adaptive).",
        discussion: """
            Each test lets MPI move the next pieces (a socket's worth over TCP); the thread sleeps in \
            between. By default the interval is a twentieth of the recent buckets' time, between 10 us \
            and 1 ms: rare wake-ups on a slow link, a busy fast link.
            """))
    var exchangePollUs: Int?

    func validate() throws {
        guard (1...1024).contains(bucketMb) else { throw ValidationError("--bucket-mb must be between 1 and 1024 (got \(bucketMb))") }
        if let exchangePollUs, !(1...100_000).contains(exchangePollUs) {
            throw ValidationError("--exchange-poll-us must be between 1 and 100000 (got \(exchangePollUs))")
        }
    }

    var settings: GradientExchange.Settings {
        GradientExchange.Settings(bucketBytes: bucketMb << 20, wireFormat: gradientExchange, progress: exchangeProgress,
                                  pollMicroseconds: exchangePollUs)
    }

    /// What a pipeline's run.json records: nil for fp32.
    var recordedWireFormat: GradientWireFormat? { gradientExchange == .fp32 ? nil : gradientExchange }
}

extension GradientWireFormat: ExpressibleByArgument {}
extension ExchangeProgress: ExpressibleByArgument {}
