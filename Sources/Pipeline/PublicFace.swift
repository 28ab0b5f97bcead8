// The library's public face: `import Pipeline` gives a program every stage,
// their shared frame and what their settings are made of, so that `sccam`
// (and any other front) imports one module and composes nothing itself.
@_exported import Data
@_exported import DenseCRF
@_exported import Distributed
@_exported import Formats
@_exported import Kernels
@_exported import Network
@_exported import Stages
@_exported import TrainingLoop
@_exported import Workflow
