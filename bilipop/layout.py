"""The one home of the run folder's format and of the study's model and training defaults.

It imports nothing (no torch, no pandas), so the CLI can show the defaults in ``--help`` and a reader of run folders
(report, demo, web page) can name their files without loading a model. The run folder is described in
docs/reference.md ("The run folder"); the stage files of the dataset folder are in ``bilipop.data.schema``.
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

# ---------------------------------------------------------------------------------------------------------------
# The study's model and training settings (README, "What it does"): the flag, the function keyword and the
# registry all read these.
DEFAULT_VIT = "B_16_imagenet1k"
DEFAULT_BERT = "bert-base-chinese"
DEFAULT_VISION = "vit"
DEFAULT_TEXT = "bert"
DEFAULT_VIT_WEIGHT = 0.75
DEFAULT_EPOCHS = 5
DEFAULT_BATCH_SIZE = 32
#: AdamW's learning rate for pretrained encoders; tiny models, trained from scratch, get TINY_LR.
DEFAULT_LR = 5e-5
TINY_LR = 1e-3
DEFAULT_CHECKPOINT = "except_last"
#: The name of the small randomly initialised encoders that train on a CPU in seconds.
TINY = "tiny"
#: Title tokens kept (longer titles are truncated).
MAX_TOKENS = 64
