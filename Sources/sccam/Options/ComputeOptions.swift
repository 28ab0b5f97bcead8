import ArgumentParser
import Pipeline

/// `--threads`: every computing command has it.
struct ThreadOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Compute threads per rank (OpenBLAS, oneDNN and our own loops).",
        discussion: """
            Default: SCCAM_THREADS, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or Slurm's SLURM_CPUS_PER_TASK if set; else the cores \
            this rank is bound to; else this machine's cores divided by its ranks.
            """))
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads))") }
    }
}

/// How a command's networks compute: `--threads` and the convolution flags, made into a `Compute`.
struct ComputeOptions: ParsableArguments {
    @OptionGroup var threads: ThreadOptions

    @Option(help: ArgumentHelp(
        "Convolution precision: fp32 or bf16.",
        discussion: """
            bf16 runs the convolutions in bfloat16 with float32 accumulation (AMX tiles or AVX512-BF16 where \
            the CPU has them) and keeps float32 master weights, gradients, optimiser state, losses, BatchNorm \
            folding and everything outside the convolutions. On CPUs without AVX-512 (oneDNN has no bf16 \
            kernels there) bf16 is emulated: float32 kernels on operands rounded to bfloat16, the same numbers \
            without the speed-up. `sccam env` says which this machine does.
            """))
    var precision: ConvolutionPrecision = .fp32

    @Option(help: ArgumentHelp(
        "Convolution implementation: onednn, or im2col (im2col + OpenBLAS sgemm, the plain reference; fp32 only).",
        valueName: "onednn|im2col"))
    var convolutions: Compute.Implementation = .onednn

    @Option(help: ArgumentHelp(
        "How 3x3 convolutions are computed: winograd (default) or direct.",
        discussion: """
            winograd runs oneDNN's Winograd F(4x4, 3x3) kernels on the float32 3x3 stride-1 undilated layers \
            where oneDNN has them (AVX-512 CPUs) and the layer has 64 input and output channels or more \
            (thinner ones lose to the transforms): 4x fewer multiplies there, the direct kernels on every \
            other layer. Its float32 errors are about 2-3x the direct kernels' and stay within 1e-5 of the \
            goldens. On AVX2 CPUs, where oneDNN has no Winograd kernels, the same layers run our float32 \
            Winograd F(4x4, 3x3) on oneDNN's matmul (the same 4x, errors inside the same bound). In bf16 on CPUs whose bf16 is AVX512-BF16 (not AMX), the 3x3 stride-1 layers with 128 \
            input and output channels or more run our Winograd F(2x2, 3x3) with bf16 products (2.25x fewer \
            multiplies; the transformed operands are rounded to bf16 instead of the raw ones, errors inside \
            the goldens' bf16 bounds). With either, dilated \
            layers run it on their phase images (see --dilated-convolutions). direct uses the direct kernels \
            everywhere. `sccam env` says what this machine does.
            """,
        valueName: "winograd|direct"))
    var convolutionAlgorithm: ConvolutionAlgorithm?

    @Option(help: ArgumentHelp(
        "How oneDNN runs dilated convolutions: auto (default), phases or dilated.",
        discussion: """
            phases runs a stride-1 dilated layer (ResNet-38's b5-b7, DeepLab's layer3, layer4 and ASPP) as one \
            undilated convolution on its d x d phase-subsampled images, so that it reaches oneDNN's undilated \
            kernels (Winograd in float32, AMX in bf16): the same multiply-adds summed in another order. dilated \
            keeps oneDNN's own dilated kernels, the reference. auto takes the phases where they were measured to \
            win: where the undilated layer runs Winograd (fp32, oneDNN's or ours on AVX2; bf16 on AVX512-BF16), and bf16 on AMX; and in fp32 it runs DeepLab's ASPP \
            (four thin branches at dilations 6-24, whose backward passes oneDNN sends to its slow gemm fallback) \
            as one sgemm over the taps that reach the map. `sccam env` and `sccam bench network` list which \
            kernel each layer runs.
            """,
        valueName: "auto|phases|dilated"))
    var dilatedConvolutions: DilatedConvolutions?

    func validate() throws {
        if convolutions == .im2col && precision == .bf16 {
            throw ValidationError("--convolutions im2col computes in fp32 only; drop --precision bf16 or use --convolutions onednn")
        }
        if convolutions == .im2col, let convolutionAlgorithm {
            throw ValidationError("--convolution-algorithm \(convolutionAlgorithm.rawValue) chooses among oneDNN's kernels; drop it or use --convolutions onednn")
        }
        if convolutions == .im2col, let dilatedConvolutions {
            throw ValidationError("--dilated-convolutions \(dilatedConvolutions.rawValue) chooses among oneDNN's kernels; drop it or use --convolutions onednn")
        }
    }

    /// The value every network of the command is built with.
    func compute(threads: Int) -> Compute {
        Compute(threads: threads, implementation: convolutions, precision: precision, algorithm: convolutionAlgorithm ?? .winograd,
                dilatedConvolutions: dilatedConvolutions ?? .auto)
    }

    /// What a pipeline's run.json records: nil for fp32.
    var recordedPrecision: ConvolutionPrecision? { precision == .fp32 ? nil : precision }
}

extension Compute.Implementation: ExpressibleByArgument {}
extension ConvolutionPrecision: ExpressibleByArgument {}
extension ConvolutionAlgorithm: ExpressibleByArgument {}
extension DilatedConvolutions: ExpressibleByArgument {}
