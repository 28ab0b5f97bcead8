extension WinogradConvolution {
    /// Which layers run their tiles a band of tile rows at a time, and how
    /// many rows a band holds.
    ///
    /// A layer with many tiles and few channels (ResNet-38's b2, 128 channels
    /// at a quarter of the input size: 29 MB of V at batch 2 and 224, 216 MB
    /// at CAM inference's scale 2 of a 500 x 375 image) has Winograd-domain
    /// matrices of tens of MB. Run whole, the input transform writes V to
    /// memory and the product reads it back, and M goes the same way to the
    /// output transform (dM and dV backward): those transforms stream from
    /// memory and gain from a second thread only what the memory does. Run a
    /// band at a time, a band's V and M (a few MB) are made, multiplied and
    /// consumed while they are in the cache, and only the activations cross
    /// the memory. U is read again for every band, so only layers with a
    /// small U run in bands. Each tile's transforms are the same, so the
    /// outputs are too; the weight gradient adds the bands' products up
    /// through the product's sum. Measured in docs/performance.md.
    enum Bands {
        /// Bytes of a band's V and M together (dM and dV backward): 2 and 8 MB were no faster.
        static let bandBytes = 4 << 20
        /// A layer runs in bands when its V or M, whole, is at least this large...
        static let minimumOperandBytes = 16 << 20
        /// ...and its U at most this (b3's 10 MB U, read for every band, cost what the bands saved).
        static let maximumWeightBytes = 4 << 20

        /// Tile rows per band for the layer of these sizes, or nil where it runs whole.
        /// Float32 only: bf16 halves the operands, and was not measured.
        static func rows(_ s: Sizes) -> Int? {
            guard s.precision == .fp32 else { return nil }
            let input = s.elements * s.tiles * s.inputRow * 4, product = s.elements * s.tiles * s.outputRow * 4
            let weights = s.elements * s.paddedInputs * s.outputRow * 4
            guard max(input, product) >= minimumOperandBytes, weights <= maximumWeightBytes else { return nil }
            let perRow = s.elements * s.tilesX * (s.inputRow + s.outputRow) * 4
            return max(1, bandBytes / perRow)
        }
    }
}
