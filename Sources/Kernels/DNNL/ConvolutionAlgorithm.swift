/// How a 3x3 convolution is computed where there is a choice.
public enum ConvolutionAlgorithm: String, CaseIterable, Codable, Sendable {
    /// Winograd where the layer is wide enough to gain, direct everywhere else.
    /// float32: oneDNN's F(4x4, 3x3) where it implements it (3x3 kernels,
    /// stride 1, no dilation, AVX-512), 4x fewer multiplies at errors about
    /// 2-3x the direct kernels' (inside the goldens' 1e-5); on AVX2 CPUs our
    /// F(4x4, 3x3) on oneDNN's float32 matmul (`WinogradConvolution`), the same 4x.
    /// bf16: our F(2x2, 3x3) with bf16 products on CPUs whose bf16 is
    /// AVX512-BF16, 2.25x fewer multiplies.
    case winograd
    /// oneDNN's direct kernels on every layer: every product of the definition.
    case direct

    /// The algorithm one pass of one layer runs with: Winograd only where it
    /// wins. Its input and output transforms cost per channel while it saves
    /// per channel pair, so thin layers lose. Measured per layer on Zen 4
    /// (`ONEDNN_VERBOSE`, ResNet-38 at widths 1 to 1/16, 224, batch 2): from
    /// 64 channels up every pass was 1.8-3.1x faster; below, backward-weights
    /// fell to 0.6-0.7x at 16-32 channels, the 3- and 8-channel stems to
    /// 0.4-0.9x, and the width-1/16 demo took 157 s instead of 139 s.
    /// oneDNN's Winograd is float32 only; bf16 runs our F(2x2, 3x3) with bf16
    /// products (`WinogradConvolution`) on 3x3 layers where the CPU's bf16 is
    /// AVX512-BF16 (measured there), oneDNN's direct kernels elsewhere. bf16's
    /// products run at twice float32's rate while the transforms cost the same
    /// per channel, so its threshold is twice float32's: measured per layer on
    /// Zen 4 (forward and backward, blocked), 64-channel layers ran 0.84-0.92x
    /// oneDNN's direct bf16 kernels, 128 channels and up 1.05-2.1x.
    func resolved(for g: ConvolutionGeometry, height: Int, width: Int, precision: ConvolutionPrecision,
                  winogradMinimumChannels: Int) -> ConvolutionAlgorithm {
        guard self == .winograd else { return .direct }
        let narrowest = min(g.inputChannels, g.outputChannels)
        switch precision {
        case .fp32:
            guard narrowest >= winogradMinimumChannels else { return .direct }
            // oneDNN runs its direct kernels where it has no Winograd one; ours is asked only where it fits.
            return !WinogradConvolution.runsFloat32Here || WinogradConvolution.fits(g) ? .winograd : .direct
        case .bf16:
            return WinogradConvolution.fits(g) && WinogradConvolution.winsOnThisCPU && narrowest >= 2 * winogradMinimumChannels
                ? .winograd : .direct
        }
    }

    /// The output tile, in pixels a side, that a 3x3 layer's kernel rounds
    /// each image up to: F(4x4, 3x3) in float32 (oneDNN's on AVX-512, ours on
    /// AVX2), our F(2x2, 3x3) in bf16; 1 for the direct kernels, which do no rounding.
    public func outputTile(precision: ConvolutionPrecision) -> Int {
        guard self == .winograd else { return 1 }
        return WinogradConvolution.runs(precision, self) ? WinogradConvolution.tile(precision).outputSize : 4
    }

    /// The fewest input and output channels a layer needs to run Winograd, measured as above.
    public static let referenceWinogradMinimumChannels = 64
}
