"""Writes the COCO fixture of DataTests with pycocotools (2.0.11 when written).

instances_fixture2014.json: five images (one without annotations), categories with
gaps in their ids, and annotations that exercise every path of pycocotools'
rasterisation: a concave polygon, a two-part polygon, vertices off the image and
negative, a repeated vertex, overlapping instances of different classes, an
uncompressed crowd RLE, a compressed RLE string, equal areas (the stable sort).

expected/<convention>/COCO_fixture2014_%012d.png: the class-id masks each convention
(coco-2014.md 4.1 coco2voc, 4.2 recam) makes with pycocotools' annToMask;
expected/fixture2014.txt, expected/fixture2014.tsv: the image list and labels.

polygons.json: 400 random polygons with pycocotools' RLE counts and string.

Run: python3 make_fixture.py (needs pycocotools, numpy, pillow).
"""
import json, os, random
import numpy as np
from PIL import Image
from pycocotools.coco import COCO
from pycocotools import mask as mask_utils

here = os.path.dirname(os.path.abspath(__file__))
split = "fixture2014"
categories = [{"id": 2, "name": "bicycle"}, {"id": 5, "name": "airplane"}, {"id": 17, "name": "cat"},
              {"id": 44, "name": "bottle"}, {"id": 90, "name": "toothbrush"}]
images = [{"id": 9, "width": 23, "height": 31}, {"id": 25, "width": 40, "height": 37},
          {"id": 3, "width": 17, "height": 13}, {"id": 581929, "width": 31, "height": 29},
          {"id": 77, "width": 12, "height": 10}]

def crowd_rle(h, w, seed):
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), dtype=np.uint8)
    m[h // 4: h // 2 + 2, w // 3: w - 2] = 1
    m[rng.random((h, w)) < 0.1] = 1
    return mask_utils.encode(np.asfortranarray(m))

def uncompressed(rle):
    m = mask_utils.decode(rle)
    flat = m.flatten(order="F")
    counts, previous, run = [], 0, 0
    for v in flat:
        if v != previous:
            counts.append(run); run = 0; previous = v
        run += 1
    counts.append(run)
    return {"counts": [int(c) for c in counts], "size": [int(m.shape[0]), int(m.shape[1])]}

crowd = crowd_rle(37, 40, 1)
compressed = crowd_rle(29, 31, 2)
compressed["counts"] = compressed["counts"].decode("ascii")
annotations = [
    # image 9 (31 x 23): a concave polygon, a big box-like polygon under it, a small one on top (equal areas).
    {"id": 1, "image_id": 9, "category_id": 17, "iscrowd": 0, "area": 120.0,
     "segmentation": [[2.3, 3.1, 18.7, 2.2, 19.9, 25.4, 11.0, 12.5, 3.2, 27.8]]},
    {"id": 2, "image_id": 9, "category_id": 2, "iscrowd": 0, "area": 400.0,
     "segmentation": [[0.0, 0.0, 22.9, 0.4, 23.5, 31.2, -1.5, 30.6]]},
    {"id": 3, "image_id": 9, "category_id": 44, "iscrowd": 0, "area": 120.0,
     "segmentation": [[5.5, 5.5, 14.25, 6.75, 9.0, 16.0]]},
    # image 25 (37 x 40): a two-part polygon, an uncompressed crowd RLE, an overlapping polygon.
    {"id": 10, "image_id": 25, "category_id": 5, "iscrowd": 0, "area": 300.5,
     "segmentation": [[1.0, 1.0, 15.0, 1.5, 14.2, 16.8, 2.1, 15.9], [20.0, 20.0, 38.9, 21.3, 30.0, 36.2, 25.0, 30.0, 21.0, 35.0]]},
    {"id": 900100284445, "image_id": 25, "category_id": 90, "iscrowd": 1, "area": 500.0,
     "segmentation": uncompressed(crowd)},
    {"id": 11, "image_id": 25, "category_id": 17, "iscrowd": 0, "area": 90.0,
     "segmentation": [[10.0, 10.0, 30.0, 12.0, 28.0, 26.0, 12.0, 24.0, 12.0, 24.0]]},
    # image 3 (13 x 17): only a polygon partly off the image, and a degenerate second part.
    {"id": 20, "image_id": 3, "category_id": 44, "iscrowd": 0, "area": 50.0,
     "segmentation": [[-4.0, -3.0, 20.0, 2.0, 8.0, 18.0], [3.0, 3.0, 5.0, 5.0]]},
    # image 581929 (29 x 31): a compressed RLE string and a polygon across it.
    {"id": 30, "image_id": 581929, "category_id": 5, "iscrowd": 1, "area": 210.0, "segmentation": compressed},
    {"id": 31, "image_id": 581929, "category_id": 2, "iscrowd": 0, "area": 150.0,
     "segmentation": [[3.4, 20.6, 27.7, 4.1, 29.9, 9.3, 6.6, 27.2]]},
    # image 77 has no annotation.
]
document = {"info": {"description": "sccam COCO fixture"}, "images": images, "annotations": annotations,
            "categories": categories, "licenses": []}
os.makedirs(os.path.join(here, "annotations"), exist_ok=True)
path = os.path.join(here, "annotations", "instances_%s.json" % split)
with open(path, "w") as f:
    json.dump(document, f)

coco = COCO(path)
label = {c: k + 1 for k, c in enumerate(sorted(coco.getCatIds()))}
for convention in ["coco2voc", "recam"]:
    folder = os.path.join(here, "expected", convention)
    os.makedirs(folder, exist_ok=True)
    for img in sorted(coco.getImgIds()):
        info = coco.imgs[img]
        h, w = info["height"], info["width"]
        seg = np.zeros((h, w), dtype=np.uint8)
        if convention == "coco2voc":
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img))
            if not anns:
                continue
            for ann in sorted(anns, key=lambda a: a["area"]):
                m = coco.annToMask(ann)
                seg = np.where(seg > 0, seg, m * label[ann["category_id"]]).astype(np.uint8)
        else:
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img, iscrowd=False)):
                seg[coco.annToMask(ann) == 1] = label[ann["category_id"]]
        Image.fromarray(seg, mode="L").save(os.path.join(folder, "COCO_%s_%012d.png" % (split, img)))
listed = [img for img in sorted(coco.getImgIds()) if coco.getAnnIds(imgIds=img)]
with open(os.path.join(here, "expected", split + ".txt"), "w") as f:
    f.writelines("COCO_%s_%012d\n" % (split, img) for img in listed)
with open(os.path.join(here, "expected", split + ".tsv"), "w") as f:
    for img in listed:
        labels = sorted({label[a["category_id"]] for a in coco.loadAnns(coco.getAnnIds(imgIds=img))})
        f.write("COCO_%s_%012d\t%s\n" % (split, img, ",".join(map(str, labels))))

rng = random.Random(7)
cases = []
for n in range(400):
    h, w = rng.randint(1, 40), rng.randint(1, 40)
    k = rng.randint(3, 9)
    poly = []
    for _ in range(k):
        poly += [round(rng.uniform(-3, w + 3), rng.randint(0, 3)), round(rng.uniform(-3, h + 3), rng.randint(0, 3))]
    if n % 10 == 0:
        poly += poly[-2:]
    rle = mask_utils.frPyObjects([poly], h, w)[0]
    decoded = mask_utils.decode(rle)
    cases.append({"polygon": poly, "height": h, "width": w, "string": rle["counts"].decode("ascii"),
                  "area": int(decoded.sum())})
with open(os.path.join(here, "polygons.json"), "w") as f:
    json.dump(cases, f)
print("wrote", path, len(cases), "polygons")
