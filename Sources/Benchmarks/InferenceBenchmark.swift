import Data
import Distributed
import Foundation
import Kernels
import Network
import Stages
import Workflow

/// Multi-scale + flip CAM inference at the real network size on 500x375
/// photo-like images (the typical VOC size), split across ranks.
public enum InferenceBenchmark {
    public static func run(images: Int, widthDivisor: Int, compute: Compute, communicator: Communicator, log: (String) -> Void) throws -> (seconds: Double, imagesPerSecond: Double) {
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: widthDivisor, round: 1), compute: compute)
        network.initializeBackbone(seed: 1)
        let mine = Sharding.contiguousRange(count: images, rank: communicator.rank, size: communicator.size)
        try communicator.barrier()
        let start = DispatchTime.now().uptimeNanoseconds
        for index in mine {
            let image = PhotoLikeImage.make(width: 500, height: 375, seed: UInt64(index))
            let imageStart = DispatchTime.now().uptimeNanoseconds
            _ = CAMInference.run(network: network, image: image, classes: [index % 20, (index + 7) % 20])
            if communicator.isRoot {
                log(String(format: "rank 0: image %d took %.1f s", index, Double(DispatchTime.now().uptimeNanoseconds - imageStart) / 1e9))
            }
        }
        var elapsed = [Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9]
        try communicator.allreduceMax(&elapsed)
        return (elapsed[0], Double(images) / elapsed[0])
    }
}
