"""Release-format building blocks shared by the lint and LLaVA-JSON tests: the prompt strings written
out literally (independent of datamix.formats, so a changed constant there is caught) and turn makers."""

SA = "\nAnswer the question using a single word or phrase."
MC = "\nAnswer with the option's letter from the given choices directly."
REG = "Please provide a short description for this region: "
REC = "Please provide the bounding box coordinate of the region this sentence describes: "


def h(v: str) -> dict:
    return {"from": "human", "value": v}


def g(v: str) -> dict:
    return {"from": "gpt", "value": v}


def exchange(id: str, image: str, question: str, answer: str) -> dict:
    """A release record of one question and its answer about `image`."""
    return {"id": id, "image": image, "conversations": [h(question), g(answer)]}


def coco_item(cls, source: str, image_id: int, **fields):
    """Item `<source>-0` of class `cls` on COCO picture `image_id` (its id and image path as read)."""
    image = f"coco/train2017/{image_id:012d}.jpg"
    return cls(key=f"{source}-0", source=source, id=f"{image_id:012d}", image=image, **fields)
