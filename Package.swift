// swift-tools-version:6.0
// sccam-swift: SC-CAM (weakly-supervised semantic segmentation via sub-category
// exploration) as a distributed CPU trainer over MPI. See README.md and the
// architecture section for what each target holds and what it may import.
import PackageDescription

let package = Package(
    name: "sccam",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sccam", targets: ["sccam"]),
        .library(name: "SCCAMKit", targets: ["Distributed", "Kernels", "Formats", "Network", "Data", "KMeans", "DenseCRF",
                                             "Workflow", "TrainingLoop", "Stages", "Pipeline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries, found with pkg-config. Each has a shim header: OpenMPI's
        // handles are macros the Clang importer cannot see, so the shim re-exposes
        // them as static inline functions.
        .systemLibrary(
            name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin", "pkgconf"])]),
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "pkgconf"])]),
        .systemLibrary(
            name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev", "pkgconf"])]),
        .systemLibrary(
            name: "CJPEG", path: "Sources/CJPEG", pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev", "pkgconf"])]),
        // oneDNN ships no pkg-config file: its headers are on the default
        // include path and the module map links libdnnl (and GNU OpenMP) itself.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),

        .target(name: "Distributed", dependencies: ["CMPI"], exclude: ["README.md"]),
        // The peak loops the benchmarks relate kernels to: C, for the vector intrinsics of each instruction set.
        .target(name: "CFMAPeak", path: "Sources/CFMAPeak"),
        // The 16 x 16 transposes between OIHW and oneDNN's blocked weight gradients: C, for AVX-512's permutes.
        .target(name: "CBlockedCopy", path: "Sources/CBlockedCopy"),
        .target(name: "Kernels", dependencies: ["CBLAS", "CDNNL", "CBlockedCopy"], exclude: ["README.md"]),
        .target(name: "Formats", dependencies: ["CPNG", "CJPEG"], exclude: ["README.md"]),
        .target(name: "Network", dependencies: ["Kernels", "Formats"], exclude: ["README.md"]),
        .target(name: "Data", dependencies: ["Formats", "Kernels"], exclude: ["README.md"]),
        .target(name: "KMeans", dependencies: ["Distributed", "Kernels"], exclude: ["README.md"]),
        .target(name: "DenseCRF", dependencies: ["Kernels"], exclude: ["README.md"]),
        // What every stage shares: the work folder's layout, the Stage protocol and its context, the per-image loop.
        .target(name: "Workflow", dependencies: ["Distributed", "Kernels", "Formats", "Data"], exclude: ["README.md"]),
        // The one training loop every network trains through.
        .target(name: "TrainingLoop", dependencies: ["Distributed", "Kernels", "Formats", "Network", "Data", "Workflow"],
                exclude: ["README.md"]),
        // The method's stages, each composed once: check-data ... segment.
        .target(name: "Stages", dependencies: ["Distributed", "Kernels", "Formats", "Network", "Data", "KMeans", "DenseCRF", "Workflow",
                                               "TrainingLoop"], exclude: ["README.md"]),
        // The stages composed into the pipeline, the demo's recipe, the run record and report: the library's public face.
        .target(name: "Pipeline", dependencies: ["Distributed", "Kernels", "Formats", "Network", "Data", "Workflow", "TrainingLoop", "Stages"],
                exclude: ["README.md"]),
        // Every measurement of `sccam bench ...`: what it measures comes from the
        // modules above; nothing in them depends on it.
        .target(name: "Benchmarks", dependencies: ["CFMAPeak", "Distributed", "Kernels", "Formats", "Network", "Data", "KMeans", "DenseCRF",
                                                   "Workflow", "TrainingLoop", "Stages"], exclude: ["README.md"]),
        // The command line: flags to stage settings, run, print. It imports the library's
        // public face (Pipeline) and the benchmarks, and composes nothing itself.
        .executableTarget(
            name: "sccam",
            dependencies: ["Pipeline", "Benchmarks", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Helpers for tests that run the built `sccam` binary (alone or under mpirun).
        .target(name: "TestSupport", dependencies: ["Formats"], path: "Tests/TestSupport"),
        // Each test target depends on `sccam` so that `swift test` builds the binary it launches.
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "TestSupport", "sccam"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Benchmarks", "TestSupport", "sccam"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "TestSupport", "sccam"]),
        .testTarget(
            name: "PipelineTests", dependencies: ["Pipeline", "Stages", "Workflow", "TrainingLoop", "Distributed", "Network", "Data", "Formats",
                                                  "TestSupport", "sccam"],
            exclude: ["Golden"]),
        .testTarget(
            name: "KMeansTests", dependencies: ["KMeans", "Distributed", "Formats", "TestSupport", "sccam"],
            exclude: ["Golden"]),
        .testTarget(
            name: "DataTests", dependencies: ["Data", "Formats", "Kernels", "TestSupport", "sccam"],
            exclude: ["Golden"]),
        .testTarget(
            name: "DenseCRFTests", dependencies: ["DenseCRF", "Kernels", "Formats", "TestSupport", "sccam"],
            exclude: ["Golden"]),
        .testTarget(
            name: "NetworkTests", dependencies: ["Network", "Kernels", "Formats", "TestSupport", "sccam"],
            exclude: ["Golden"]),
    ]
)
