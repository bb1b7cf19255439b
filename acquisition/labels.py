"""Class ids of segmentation masks, in Dotti et al.'s convention (used everywhere in castream).

0 background, 1 spark, 2 wave, 3 puff, 4 ignore (excluded from training losses and metrics).
"""

BACKGROUND = 0
SPARK = 1
WAVE = 2
PUFF = 3
IGNORE = 4
N_CLASSES = 4  # network outputs: background, spark, wave, puff

CLASS_NAMES = {BACKGROUND: "background", SPARK: "spark", WAVE: "wave", PUFF: "puff"}
CLASS_IDS = {name: cid for cid, name in CLASS_NAMES.items()}
