"""What a browser adds to a request: the WBI signature (docs/reference.md, "WBI signing") and the anti-bot fields of
``arc/search``; shared by the crawler and the local server."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import time
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

# The fixed permutation that turns img_key + sub_key into the mixin key.
MIXIN_TABLE = (
    46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42, 19, 29, 28, 14, 39,
    12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62,
    11, 36, 20, 34, 44, 52,
)
_STRIPPED = str.maketrans("", "", "!'()*")
# Characters encodeURIComponent leaves alone.
_SAFE = "-_.~!*'()"


def key_from_url(url: str) -> str:
    """The key in a ``wbi_img`` URL: its file name without the extension."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    return name.split(".", 1)[0]


def mixin_key(img_key: str, sub_key: str) -> str:
    """The 32-character key mixed into every signature."""
    raw = img_key + sub_key
    return "".join(raw[i] for i in MIXIN_TABLE if i < len(raw))[:32]


def encode_query(params: Mapping[str, object]) -> str:
    """Sorted ``k=v&...`` with the characters ``!'()*`` removed and JavaScript-style percent-encoding."""
    parts = []
    for key in sorted(params):
        value = str(params[key]).translate(_STRIPPED)
        parts.append(f"{quote(str(key), safe=_SAFE)}={quote(value, safe=_SAFE)}")
    return "&".join(parts)


def signature(params: Mapping[str, object], mixin: str) -> str:
    """``w_rid`` for params that already include ``wts``."""
    return hashlib.md5((encode_query(params) + mixin).encode("utf-8")).hexdigest()


def sign(params: Mapping[str, object], mixin: str, *, wts: int | None = None) -> dict[str, str]:
    """Return the parameters (cleaned of ``!'()*``) plus ``wts`` and ``w_rid``, ready to send."""
    signed = {str(k): str(v).translate(_STRIPPED) for k, v in params.items() if k not in ("w_rid", "wts")}
    signed["wts"] = str(int(time.time()) if wts is None else wts)
    signed["w_rid"] = signature(signed, mixin)
    return signed


def verify(params: Mapping[str, object], mixin: str) -> bool:
    """True when ``params`` carry a ``w_rid`` that matches the rest of them (what the server checks)."""
    given = params.get("w_rid")
    if not given or "wts" not in params:
        return False
    rest = {k: v for k, v in params.items() if k != "w_rid"}
    return signature(rest, mixin) == given


def anti_bot_fields(rnd: random.Random) -> dict[str, str]:
    """The fields a browser adds to ``arc/search`` (docs/reference.md, "Enumeration"): an empty ``dm_img_list``, two
    base64 strings of random printable text with their last two characters dropped, and a small ``dm_img_inter``."""
    def b64(low: int, high: int) -> str:
        text = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(rnd.randint(low, high)))
        return base64.b64encode(text.encode()).decode()[:-2]

    inter = {"ds": [], "wh": [rnd.randint(1000, 6000), rnd.randint(1000, 6000), 0],
             "of": [rnd.randint(10, 500), rnd.randint(10, 900), 0]}
    return {"dm_img_list": "[]", "dm_img_str": b64(16, 64), "dm_cover_img_str": b64(32, 128),
            "dm_img_inter": json.dumps(inter, separators=(",", ":"))}
