"""Every cover x title combination of a ranking, each distinct input encoded once (``rank_candidates``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bilipop.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from bilipop.models.run import LoadedRun


def cross_probabilities(run: LoadedRun, covers: Sequence[str | Path], titles: Sequence[str],
                        batch_size: int = 32) -> np.ndarray:
    """Class probabilities (N * M, 5) of every cover x title pair, cover-major (the pairs of cover 0 first).

    The encoders meet only at the fusion, so each DISTINCT cover and title is encoded once (N cover passes,
    M title passes, in batches) and only the fusion head runs N x M times.

    Raises:
        InputError: a bad cover or an empty title (named by its number).
    """
    import numpy as np
    import torch

    cover_keys = list(dict.fromkeys(str(c) for c in covers))
    title_keys = list(dict.fromkeys(titles))
    cover_vecs = title_vecs = None
    if run.uses_cover:
        parts = []
        for start in range(0, len(cover_keys), batch_size):
            chunk = []
            for i, cover in enumerate(cover_keys[start:start + batch_size], start):
                try:
                    chunk.append(run.preprocess_cover(cover))
                except InputError as exc:
                    raise InputError(f"cover {i + 1}: {exc}") from None
            parts.append(run.cover_vectors(torch.stack(chunk)))  # (b, D)
        cover_vecs = torch.cat(parts)
    if run.uses_title:
        parts = []
        for start in range(0, len(title_keys), batch_size):
            tokens = run.tokenize(title_keys[start:start + batch_size])
            parts.append(run.title_vectors(tokens["input_ids"], tokens["attention_mask"]))
        title_vecs = torch.cat(parts)
    cover_at = {c: i for i, c in enumerate(cover_keys)}
    title_at = {t: i for i, t in enumerate(title_keys)}
    ci = torch.tensor([cover_at[str(c)] for c in covers for _ in titles], dtype=torch.long)
    ti = torch.tensor([title_at[t] for _ in covers for t in titles], dtype=torch.long)
    out = []
    for start in range(0, len(ci), 4096):  # the head is one linear layer: cheap even for thousands of pairs
        part = slice(start, start + 4096)
        out.append(run.fused_probabilities(cover_vecs[ci[part].to(cover_vecs.device)] if cover_vecs is not None
                                           else None,
                                           title_vecs[ti[part].to(title_vecs.device)] if title_vecs is not None
                                           else None))
    return np.concatenate(out)
