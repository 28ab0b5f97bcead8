import ArgumentParser
import Pipeline
import Foundation

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert weights (PyTorch .pth, MXNet .params, safetensors) to safetensors.",
        discussion: """
            The format is recognised by content, not by name: PyTorch checkpoints in the zip format \
            (torch.save since 1.6) or the legacy format (the reference's released weights), MXNet \
            NDArray files (the ImageNet ResNet-38, renamed with the reference's rules), or \
            safetensors. The model is inferred from the shapes (width from conv1a, round and k from \
            the heads) and every tensor is checked against it; missing, unexpected or wrongly \
            shaped tensors are listed. BatchNorm batch counters are dropped. Only the tensors the \
            file holds are written: converting ImageNet weights gives a backbone without heads, \
            which training completes with Xavier-initialised heads as the reference does.
            """)

    @Argument(help: "The weight file to read.") var input: String
    @Argument(help: "The safetensors file to write (atomically).") var output: String
    @Flag(help: "Accept a checkpoint whose classification heads are missing (they are then not written).") var allowMissingHeads = false

    func run() throws {
        do {
            let summary = try WeightConversion.convert(input, to: output, allowMissingHeads: allowMissingHeads)
            let c = summary.configuration
            let model = summary.hasHeads
                ? (c.round == 0 ? "round-0 classifier (fc8)" : "SC-CAM classifier (fc8_20, fc8_200, k = \(c.subcategoriesPerClass))")
                : "backbone without heads"
            print("read \(input) (\(summary.format.rawValue)): ResNet-38 width 1/\(c.widthDivisor), \(model)")
            for note in summary.notes { print("note: \(note)") }
            if !summary.notLoaded.isEmpty {
                print("not in the file, so not written: \(summary.notLoaded.joined(separator: ", "))")
            }
            if !summary.ignored.isEmpty { print("dropped \(summary.ignored.count) BatchNorm batch counter(s)") }
            print("wrote \(summary.written) tensors to \(output)")
        } catch {
            FileHandle.standardError.write(Data("sccam: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
