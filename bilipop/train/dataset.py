"""Training examples: the labeled table checked up front, covers decoded lazily (never all in memory), titles
tokenized once, and an optional uint8 memmap cache of the resized covers so later epochs skip JPEG decoding."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from bilipop.data.io import read_labeled
from bilipop.data.schema import blank_title
from bilipop.errors import InputError
from bilipop.models.preprocess import check_cover, decode_cover, resolve_cover, tokenize
from bilipop.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class Examples:
    """The rows of the labeled table that training uses, in table order."""

    bvids: list[str]
    titles: list[str]
    covers: list[Path]
    labels: np.ndarray  # (N,) int64 in 0..4


def load_examples(table_path: Path, data: Path, *, covers: bool, titles: bool,
                  progress: Progress | None = None) -> Examples:
    """Read and check the labeled table; every cover is checked up front (a decode at 1/8 scale, cheap with
    Pillow) so that a bad file stops the run before training, not in the middle of an epoch.

    Raises:
        InputError: an unreadable table, a missing column, no rows, a label outside 0..4, an empty title, or a
            missing/truncated/non-image cover (named by bvid and file).
    """
    table = read_labeled(table_path, columns=(["cover_path"] if covers else []) + (["title"] if titles else []),
                         command="train")
    labels = table["label"].to_numpy(dtype=np.int64)
    bvids = [str(b) for b in table["bvid"]]
    title_list = ["" for _ in bvids]
    if titles:
        title_list = ["" if t is None or t != t else str(t) for t in table["title"]]
        for bvid, title in zip(bvids, title_list, strict=True):
            if blank_title(title):
                raise InputError(f"video {bvid} has an empty title in {table_path}; every video needs a title "
                                 "(remove the row or fill it in)")
    cover_list: list[Path] = []
    if covers:
        cover_list = [resolve_cover(p, data, table_path) for p in table["cover_path"]]
        _check_covers(bvids, cover_list, progress)
    return Examples(bvids, title_list, cover_list, labels)


def _check_covers(bvids: Sequence[str], covers: Sequence[Path], progress: Progress | None) -> None:
    def check(i: int) -> str | None:
        if covers[i] == Path(""):
            return f"video {bvids[i]} has no cover_path"
        try:
            check_cover(covers[i], what=f"of video {bvids[i]}")
        except InputError as exc:
            return str(exc)
        return None

    problems: list[str] = []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for done, problem in enumerate(pool.map(check, range(len(covers))), start=1):
            if problem:
                problems.append(problem)
            if progress and (done % 256 == 0 or done == len(covers)):
                progress(done, len(covers))
    if problems:
        more = f" ({len(problems) - 1} more unusable cover(s))" if len(problems) > 1 else ""
        raise InputError(problems[0] + more)


class CoverCache:
    """A uint8 (N, S, S, 3) memmap of resized covers plus a filled-flag per row, shared by loader workers.

    The file is keyed by the list of covers and the size: a different table or model size makes a new cache. With
    ``create=False`` the files must already be there (another process on this machine made them).
    """

    def __init__(self, folder: Path, covers: Sequence[Path], size: int, *, create: bool = True) -> None:
        self.size, self.n = size, len(covers)
        self.covers = list(covers)
        self.pixels_path = folder / f"covers_{size}px.npy"
        self.done_path = folder / f"covers_{size}px.done.npy"
        key_path = folder / f"covers_{size}px.json"
        key = [str(p) for p in covers]
        fresh = not (self.pixels_path.exists() and self.done_path.exists() and key_path.exists()
                     and json.loads(key_path.read_text(encoding="utf-8")) == key)
        if fresh and not create:
            raise InputError(f"the cover cache {self.pixels_path} is missing or belongs to another table; the "
                             "process that builds it (LOCAL_RANK 0) did not finish")
        if fresh:
            folder.mkdir(parents=True, exist_ok=True)
            np.lib.format.open_memmap(self.pixels_path, mode="w+", dtype=np.uint8, shape=(self.n, size, size, 3))
            np.lib.format.open_memmap(self.done_path, mode="w+", dtype=np.uint8, shape=(self.n,))
            key_path.write_text(json.dumps(key), encoding="utf-8")
        self._pixels: np.memmap | None = None
        self._done: np.memmap | None = None

    def _maps(self) -> tuple[np.memmap, np.memmap]:
        """The pixels and the done flags, mapped on first use so that each loader worker maps the file itself
        after the fork."""
        if self._pixels is None or self._done is None:
            self._pixels = np.load(self.pixels_path, mmap_mode="r+")
            self._done = np.load(self.done_path, mmap_mode="r+")
        return self._pixels, self._done

    def get(self, i: int, decode: Callable[[], np.ndarray]) -> np.ndarray:
        """Row ``i``'s resized cover, decoded with ``decode()`` and stored the first time it is asked for."""
        pixels_map, done = self._maps()
        if done[i]:
            return np.array(pixels_map[i])
        pixels = decode()
        pixels_map[i] = pixels
        done[i] = 1  # written after the pixels: a reader never sees a half-filled row as done
        return pixels

    def fill(self, bvids: Sequence[str]) -> int:
        """Decode every cover not yet stored (in threads); returns how many were decoded."""
        pixels_map, done = self._maps()
        todo = [i for i in range(self.n) if not done[i]]

        def one(i: int) -> None:
            self.get(i, lambda: decode_cover(self.covers[i], self.size, what=f"of video {bvids[i]}"))

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(one, todo))
        pixels_map.flush()
        done.flush()
        log.info("cover cache %s: %d covers decoded, %d already there", self.pixels_path, len(todo),
                 self.n - len(todo))
        return len(todo)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None, "_done": None}


class CoverTitleDataset(Dataset):
    """Item i: (uint8 cover (S, S, 3) or an empty tensor, input_ids (T,), attention_mask (T,), label, i).

    The row index i names the row's dropout masks (``bilipop.models.noise``)."""

    def __init__(self, examples: Examples, *, image_size: int, tokenizer=None, max_tokens: int = 64,
                 cache: CoverCache | None = None) -> None:
        self.examples, self.image_size, self.cache = examples, image_size, cache
        n = len(examples.bvids)
        if tokenizer is not None:
            enc = tokenize(tokenizer, examples.titles, max_tokens)
            self.input_ids, self.attention_mask = enc["input_ids"], enc["attention_mask"]
        else:
            self.input_ids = self.attention_mask = torch.zeros(n, 0, dtype=torch.long)
        self.labels = torch.tensor(examples.labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.examples.bvids)

    def cover(self, i: int) -> np.ndarray:
        """Row ``i``'s cover resized to the model's size: uint8 (S, S, 3)."""
        def decode() -> np.ndarray:
            return decode_cover(self.examples.covers[i], self.image_size, what=f"of video {self.examples.bvids[i]}")

        return self.cache.get(i, decode) if self.cache is not None else decode()

    def __getitem__(self, i: int):
        image = torch.from_numpy(self.cover(i)) if self.image_size else torch.zeros(0, dtype=torch.uint8)
        return image, self.input_ids[i], self.attention_mask[i], self.labels[i], i


def make_loader(dataset: Dataset, indices: Sequence[int], *, batch_size: int, shuffle: bool, seed: int,
                num_workers: int, rank: int = 0, world_size: int = 1, drop_last: bool = False) -> DataLoader:
    """A loader over ``indices``; the order of epoch e depends only on (seed, e) via ``loader.sampler.set_epoch``,
    which makes ``--resume`` exact. With several processes each one reads its own share (DistributedSampler)."""
    if num_workers > 0:
        # Titles were tokenized before the fork; without this, tokenizers warns in every worker.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    subset = Subset(dataset, list(indices))
    sampler: DistributedSampler = DistributedSampler(subset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                                     seed=seed, drop_last=False)
    # The loader draws worker seeds from its generator; with the global one, that draw would shift the dropout
    # masks depending on num_workers and on when the workers started (a resumed run starts them later).
    return DataLoader(subset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=drop_last,
                      persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available(),
                      generator=torch.Generator().manual_seed(seed))


def default_workers(n_rows: int) -> int:
    # Forking workers costs more than it saves on a few hundred small covers.
    """Loader worker processes for a table of ``n_rows``: none for small tables, else up to 4."""
    if n_rows < 512:
        return 0
    return max(1, min(4, (os.cpu_count() or 2) - 1))
