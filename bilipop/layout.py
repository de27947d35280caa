"""The one home of the names of the files bilipop writes: the dataset folder's and the run folder's.

It imports nothing (no torch, no pandas), so that a reader of run folders (report, demo, web page) can name their
files without loading a model. The run folder is described in docs/reference.md ("The run folder"); the stage files
of the dataset folder are in ``bilipop.data.schema``; the training settings and their defaults in
``bilipop.train_config``.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------------------------
# The dataset folder's own names, here (not in bilipop.data) so that bilipop.crawl can name them without importing
# bilipop.data, which reads crawl stores (docs/reference.md, "The dataset folder")
#: The dataset folder when none is given (``--data``, env ``BILIPOP_DATA``).
DEFAULT_DATA_DIR = "data"
STORE_FILE = "bilipop.db"  # the crawl store (SQLite)
COVERS_DIR = "covers"  # covers/<bvid>.jpg

# ---------------------------------------------------------------------------------------------------------------
# The run folder that ``train`` writes and ``evaluate``/``predict`` read
#: Written into config.json; a run of another version is refused rather than misread.
FORMAT_VERSION = 1
CONFIG = "config.json"  # every setting needed to rebuild the model, tokenizer and preprocessing
WEIGHTS = "model.safetensors"  # the kept epoch's weights (no pickle)
TOKENIZER = "tokenizer"  # folder: the title tokenizer's files (save_pretrained layout)
HISTORY = "history.jsonl"  # one JSON line per epoch
SPLIT = "split.json"  # the bvids of the train, valid and test parts
CHECKPOINT = "checkpoint.pt"  # optimizer, scaler and RNG state for --resume; removed when the run finishes
COVER_CACHE = "cover_cache"  # folder: resized covers of --cache (uint8 memmap)
EVAL_DIR = "eval"  # folder: evaluate writes eval/<split>/ here
METRICS = "metrics.json"  # in eval/<split>/: what evaluate --json prints
#: A --vit-weight sweep's folder holds sweep.json, table1.md/.csv and one run per weight (w<weight>/).
SWEEP = "sweep.json"
TABLE1_MD = "table1.md"
TABLE1_CSV = "table1.csv"
