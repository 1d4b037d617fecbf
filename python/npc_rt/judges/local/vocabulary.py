"""The detector's class vocabulary and the words that name each class in prompts.

Class names are GenEval's spellings of the 80 COCO classes (``object_names.txt``): metadata uses
them, so detections are reported in them too. Darknet's ``coco.names`` spells nine classes
differently; ``DETECTOR_ALIASES`` folds those (and any user-supplied names file using them) onto
the GenEval spelling.
"""

from __future__ import annotations

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "computer mouse", "tv remote",
    "computer keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

DETECTOR_ALIASES: dict[str, str] = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
    "mouse": "computer mouse",
    "remote": "tv remote",
    "keyboard": "computer keyboard",
}

# Plurals the simple rules in ``plural`` get wrong.
_IRREGULAR_PLURALS = {
    "person": "people",
    "knife": "knives",
    "sheep": "sheep",
    "skis": "skis",
    "scissors": "scissors",
    "mouse": "mice",
    "broccoli": "broccoli",
}

# Other words for a class, singular and plural both listed (they are looked up as written).
SYNONYMS: dict[str, str] = {
    "persons": "person", "man": "person", "men": "person", "woman": "person",
    "women": "person", "boy": "person", "boys": "person", "girl": "person", "girls": "person",
    "child": "person", "children": "person", "kid": "person", "kids": "person",
    "astronaut": "person", "astronauts": "person",
    "bike": "bicycle", "bikes": "bicycle",
    "automobile": "car", "automobiles": "car",
    "motorbike": "motorcycle", "motorbikes": "motorcycle",
    "plane": "airplane", "planes": "airplane", "aeroplane": "airplane", "aeroplanes": "airplane",
    "ship": "boat", "ships": "boat", "lorry": "truck", "lorries": "truck",
    "puppy": "dog", "puppies": "dog", "kitten": "cat", "kittens": "cat", "kitty": "cat",
    "sofa": "couch", "sofas": "couch",
    "tvs": "tv", "television": "tv", "televisions": "tv", "tv monitor": "tv",
    "tvmonitor": "tv", "monitor": "tv", "monitors": "tv",
    "mouse": "computer mouse", "mice": "computer mouse",
    "remote": "tv remote", "remotes": "tv remote", "remote control": "tv remote",
    "remote controls": "tv remote",
    "keyboard": "computer keyboard", "keyboards": "computer keyboard",
    "phone": "cell phone", "phones": "cell phone", "cellphone": "cell phone",
    "cellphones": "cell phone", "smartphone": "cell phone", "smartphones": "cell phone",
    "mobile phone": "cell phone", "mobile phones": "cell phone",
    "ball": "sports ball", "balls": "sports ball", "football": "sports ball",
    "soccer ball": "sports ball", "basketball": "sports ball", "tennis ball": "sports ball",
    "table": "dining table", "tables": "dining table",
    "plant": "potted plant", "plants": "potted plant", "houseplant": "potted plant",
    "houseplants": "potted plant",
    "fridge": "refrigerator", "fridges": "refrigerator",
    "doughnut": "donut", "doughnuts": "donut", "hotdog": "hot dog", "hotdogs": "hot dog",
    "mug": "cup", "mugs": "cup", "wineglass": "wine glass", "wineglasses": "wine glass",
    "hair dryer": "hair drier", "hair dryers": "hair drier", "hairdryer": "hair drier",
    "teddy": "teddy bear", "teddies": "teddy bear", "ski": "skis",
    "racket": "tennis racket", "rackets": "tennis racket", "laptops": "laptop",
    "handbags": "handbag", "purse": "handbag", "purses": "handbag",
}  # fmt: skip


def canonical_class(name: str) -> str:
    """GenEval spelling of a detector label (``"motorbike"`` -> ``"motorcycle"``)."""
    folded = " ".join(name.strip().lower().split())
    return DETECTOR_ALIASES.get(folded, folded)


def plural(name: str) -> str:
    """English plural of a class name (its last word inflected)."""
    head, _, last = name.rpartition(" ")
    if last in _IRREGULAR_PLURALS:
        word = _IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in tuple("aeiou"):
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def count_phrase(count: int, name: str) -> str:
    """``"three dogs"``, ``"one cat"``: a count and a class as words."""
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    number = words[count] if 0 <= count < len(words) else str(count)
    return f"{number} {name if count == 1 else plural(name)}"


def phrase_table(classes: tuple[str, ...] = COCO_CLASSES) -> dict[str, str]:
    """Every phrase that names a class (singular, plural, synonyms) -> the class name."""
    table: dict[str, str] = {}
    known = set(classes)
    for phrase, name in SYNONYMS.items():
        if name in known:
            table[phrase] = name
    for name in classes:  # class names win over synonyms ("mouse" aside, which is only one)
        table[name] = name
        table[plural(name)] = name
        # The naive plural too: GenEval's own prompts write "toothbrushs", "sheeps", "knifes".
        table.setdefault(name + "s", name)
    return table
