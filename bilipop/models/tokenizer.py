"""The title tokenizer of the text encoders: trained from the titles for ``tiny`` models, read from a
``save_pretrained`` folder otherwise (a pretrained BERT's, or a run folder's ``tokenizer/``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bilipop.errors import ModelError
from bilipop.models.limits import check_tokenizer_files, refuse_code
from bilipop.train_config import MAX_TOKENS

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_tiny_tokenizer(titles: Sequence[str], vocab_size: int = 2000):
    """A BERT WordPiece tokenizer whose vocabulary is learned from ``titles`` (Chinese splits into characters).

    The vocabulary is counted here rather than by the ``tokenizers`` WordPiece trainer, whose choice among pairs
    of equal count changes from one process to the next (the same titles gave different vocabularies, hence
    different runs with the same seed). It holds the special tokens, every character seen at the start of a word
    and, as ``##c``, inside one (so that every title seen tokenizes without ``[UNK]``), then whole words of two or
    more characters, most frequent first and ties in code-point order, up to ``vocab_size``.
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizer

    normalize = normalizers.BertNormalizer(lowercase=True)
    split = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for title in titles:
        words.update(word for word, _ in split.pre_tokenize_str(normalize.normalize_str(str(title))))
    specials = list(SPECIAL_TOKENS)
    alphabet = {word[0] for word in words} | {"##" + c for word in words for c in word[1:]}
    tokens = specials + sorted(alphabet - set(specials))
    room = max(vocab_size - len(tokens), 0)
    known = set(tokens)
    whole = sorted((w for w in words if len(w) > 1 and w not in known), key=lambda w: (-words[w], w))
    tokens += whole[:room]
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
