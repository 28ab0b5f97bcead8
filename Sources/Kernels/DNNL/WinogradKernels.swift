import CBlockedCopy

extension WinogradConvolution {
    /// The C transforms of one precision and tile, chosen once per shape
    /// (`Sizes.kernels`) rather than at each call site. bf16 has F(2x2, 3x3)
    /// only; its transforms that read float32 products (output, input
    /// gradient, weight gradient) share the float32 signatures, while the
    /// ones that write bf16 operands stay behind `Sizes.precision` where they
    /// are called.
    struct Kernels {
        // Read float32 products, in both precisions.
        var outputSlab = sccam_winograd_f32_output_slab
        var inputGradientSlab = sccam_winograd_f32_input_gradient_slab
        var weightGradientRow = sccam_winograd_f32_weight_gradient_row
        // Write float32 operands (the float32 path only).
        var inputSlab = sccam_winograd_f32_input_slab
        var gradientSlab = sccam_winograd_f32_gradient_slab
        var weightTile = sccam_winograd_f32_weight_tile

        init(precision: ConvolutionPrecision, tile: Tile) {
            if precision == .bf16 {
                outputSlab = sccam_winograd_output_slab
                inputGradientSlab = sccam_winograd_input_gradient_slab
                weightGradientRow = sccam_winograd_weight_gradient_row
            } else if tile == .fourByFour {
                outputSlab = sccam_winograd4x3_f32_output_slab
                inputGradientSlab = sccam_winograd4x3_f32_input_gradient_slab
                weightGradientRow = sccam_winograd4x3_f32_weight_gradient_row
                inputSlab = sccam_winograd4x3_f32_input_slab
                gradientSlab = sccam_winograd4x3_f32_gradient_slab
                weightTile = sccam_winograd4x3_f32_weight_tile
            }
        }
    }
}
