"""What the COCO-based sources share: the train2017 image archive and how release records on COCO
pictures are told apart (LLaVA-Instruct, VQAv2, OK-VQA, A-OKVQA and RefCOCO all point into
`coco/train2017/`).

train2014 is not fetched: every train2014 image is in train2017 with the same id (docs/sources.md 1.1).
"""

from __future__ import annotations

from datamix.sources.base import RemoteFile

# docs/sources.md 1.1: 19,336,861,798 bytes, MD5 cced6f7f71b7629ddf16f17bbcfab6b2, holds train2017/;
# listed by every source that reads it (same `path`: the downloader fetches it once)
COCO_TRAIN2017 = RemoteFile(
    url="http://images.cocodataset.org/zips/train2017.zip",
    path="downloads/coco/train2017.zip",
    md5="cced6f7f71b7629ddf16f17bbcfab6b2",
    size=19_336_861_798,
    extract_to="images/coco",
    kind="images",
)

#: the image-path prefix of release records on COCO pictures (`import-llava`, `compare`)
COCO_FOLDER = "coco/"
