import Data
import Foundation

extension SCCAMPipeline.Settings {
    /// The method on MS COCO 2014 (coco-2014.md 3, 6, 7): every stage as on
    /// VOC except where COCO's protocol differs, each difference with its source.
    public static func coco(root: String) -> SCCAMPipeline.Settings {
        var settings = SCCAMPipeline.Settings(vocRoot: "")
        settings.vocRoot = nil
        settings.dataset = .coco
        settings.cocoRoot = root
        // The WSSS protocol (6): train on and score the CAMs and pseudo-labels of the 82,081
        // train2014 images with an annotation; the segmentation network on val2014's 40,137.
        settings.trainList = "train2014"
        settings.inferList = "train2014"
        // k = 10 per parent as on VOC (SC-CAM has no COCO setting): 800 sub-categories.
        var segmentation = SCCAMPipeline.SegmentationSettings()
        segmentation.validationList = "val2014"
        // DeepLab-v2 on COCO (L2G's COCO config, 7): ImageNet initialisation, never the COCO
        // weights VOC starts from (they saw COCO's masks); 50,000 iterations of 20 images.
        segmentation.initialWeights = nil
        segmentation.iterations = 50_000
        segmentation.batch = 20
        segmentation.iterSize = 1
        settings.segmentation = segmentation
        return settings
    }
}
