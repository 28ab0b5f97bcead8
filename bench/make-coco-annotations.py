"""A synthetic instances_train2014.json of COCO's full size, for timing readers.

82,783 images (640 x 480 and 480 x 640), 604,907 annotations over COCO's 80
category ids: 95% polygon annotations (1-3 polygons of 6-28 vertices, two
decimals, as COCO's are), 5% crowd annotations as uncompressed RLE with ids
above 2^32; 702 images get no annotation. About 330 MB, like the real file.

Usage: python3 make-coco-annotations.py OUT.json [seed]
"""
import json, math, random, sys

out = sys.argv[1]
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
ids = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35,
       36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
       67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]
n_images, n_annotations, n_empty = 82_783, 604_907, 702
images = []
for i in range(n_images):
    w, h = (640, 480) if i % 3 else (480, 640)
    image_id = 9 + 7 * i
    images.append({"license": 3, "file_name": "COCO_train2014_%012d.jpg" % image_id, "coco_url": "", "height": h, "width": w,
                   "date_captured": "2013-11-14 11:18:45", "flickr_url": "", "id": image_id})
annotated = images[n_empty:]
with open(out, "w") as f:
    f.write('{"info": {"description": "synthetic COCO-size instances file"}, "images": ')
    json.dump(images, f)
    f.write(', "annotations": [')
    for a in range(n_annotations):
        image = annotated[a % len(annotated)] if a < len(annotated) else rng.choice(annotated)
        w, h = image["width"], image["height"]
        crowd = a % 20 == 19
        if crowd:
            runs, total = [], w * h
            position = 0
            while position < total:
                run = min(total - position, rng.randint(1, 4000))
                runs.append(run)
                position += run
            segmentation = {"counts": runs, "size": [h, w]}
            ann_id = 900100000000 + a
        else:
            segmentation = []
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(5, 120)
                k = rng.randint(6, 28)
                polygon = []
                for j in range(k):
                    angle = 2 * math.pi * j / k
                    rr = r * rng.uniform(0.6, 1.0)
                    polygon += [round(min(w, max(0, cx + rr * math.cos(angle))), 2), round(min(h, max(0, cy + rr * math.sin(angle))), 2)]
                segmentation.append(polygon)
            ann_id = a + 1
        annotation = {"segmentation": segmentation, "area": round(rng.uniform(10, 50000), 4), "iscrowd": 1 if crowd else 0,
                      "image_id": image["id"], "bbox": [0.0, 0.0, 1.0, 1.0], "category_id": ids[a % 80], "id": ann_id}
        if a:
            f.write(", ")
        json.dump(annotation, f)
    f.write('], "categories": ')
    json.dump([{"supercategory": "thing", "id": i, "name": "class%d" % i} for i in ids], f)
    f.write("}\n")
