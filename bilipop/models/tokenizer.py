"""The title tokenizer of the text encoders: trained from the titles for ``tiny`` models, read from a
``save_pretrained`` folder otherwise (a pretrained BERT's, or a run folder's ``tokenizer/``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bilipop.errors import ModelError
from bilipop.layout import MAX_TOKENS
from bilipop.models.limits import check_tokenizer_files, refuse_code

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_tiny_tokenizer(titles: Sequence[str], vocab_size: int = 2000):
    """A BERT WordPiece tokenizer whose vocabulary is learned from ``titles`` (Chinese splits into characters)."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizer

    specials = list(SPECIAL_TOKENS)
    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(list(titles), vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                special_tokens=specials)
    # The trainer numbers tokens in a different order from one call to the next; sorted ids make the same
    # titles give the same tokenizer, hence the same initial embeddings and a reproducible run.
    tokens = specials + sorted(set(trainer.get_vocab()) - set(specials))
    return BertTokenizer(vocab={tok: i for i, tok in enumerate(tokens)}, model_max_length=MAX_TOKENS)


def load_tokenizer(folder: Path, max_tokens: int, *,
                   hint: str = "the folder needs the tokenizer files written by save_pretrained"):
    """The tokenizer saved in ``folder`` (``save_pretrained`` layout), truncating at ``max_tokens``.

    Raises:
        ModelError: the files are missing or damaged (the message ends with ``hint``).
    """
    from transformers import AutoTokenizer

    refuse_code(folder, "tokenizer folder")
    if Path(folder).is_dir():
        check_tokenizer_files(folder, "the tokenizer folder")
    try:
        # trust_remote_code=False: never import a folder's own Python, and never ask on stdout whether to
        return AutoTokenizer.from_pretrained(str(folder), model_max_length=max_tokens, trust_remote_code=False)
    except Exception as exc:  # transformers raises many types for missing or damaged files
        raise ModelError(f"cannot load a tokenizer from {folder}: {str(exc).strip().splitlines()[0]}; "
                         f"{hint}") from exc
