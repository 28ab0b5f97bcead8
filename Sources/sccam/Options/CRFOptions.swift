import ArgumentParser
import Pipeline

/// The CRF's pairwise terms on the command line: a preset, optionally with
/// either kernel overridden.
struct CRFOptions: ParsableArguments {
    enum Preset: String, ExpressibleByArgument, CaseIterable {
        case psa, deeplab
        var parameters: CRFParameters { self == .psa ? .psa : .deeplab }
    }

    @Option(help: "Pairwise terms: psa (Gaussian 3,3; bilateral 80,13,10: affinity labels, SC-CAM's dCRF) or deeplab (1,3; 67,3,4).") var preset: Preset = .psa
    @Option(help: ArgumentHelp("The Gaussian kernel as SXY,COMPAT (overrides the preset's).", valueName: "sxy,compat"))
    var gaussian: String?

    @Option(help: ArgumentHelp("The bilateral kernel as SXY,SRGB,COMPAT (overrides the preset's).", valueName: "sxy,srgb,compat"))
    var bilateral: String?

    @Option(help: "Mean-field iterations.") var iterations = CRFStage.Settings(image: "", probabilities: "", output: "").iterations

    func validate() throws {
        guard iterations >= 0 else { throw ValidationError("--iterations must be 0 or more") }
        _ = try parameters()
    }

    func parameters() throws -> CRFParameters {
        var p = preset.parameters
        if let gaussian {
            guard let values: [Float] = ListArguments.values(gaussian), values.count == 2, values[0] > 0 else {
                throw ValidationError("--gaussian must be SXY,COMPAT with SXY > 0 (got '\(gaussian)')")
            }
            p.gaussianSXY = values[0]
            p.gaussianCompat = values[1]
        }
        if let bilateral {
            guard let values: [Float] = ListArguments.values(bilateral), values.count == 3, values[0] > 0, values[1] > 0 else {
                throw ValidationError("--bilateral must be SXY,SRGB,COMPAT with SXY and SRGB > 0 (got '\(bilateral)')")
            }
            p.bilateralSXY = values[0]
            p.bilateralSRGB = values[1]
            p.bilateralCompat = values[2]
        }
        return p
    }
}
