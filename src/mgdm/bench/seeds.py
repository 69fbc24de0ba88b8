"""The seeds of every benchmark: run-seed lists from the command line, names entered into
:func:`mgdm.random.derive_seed`, and blocks of per-sample seeds."""

from __future__ import annotations

import hashlib

from mgdm.random import derive_seed

MAX_SEEDS = 10_000
"""The most seeds a seed list may name (a benchmark runs every one of them)."""


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,5"`` or ``"0-4,8"`` -> a sorted list of distinct non-negative seeds, at
    most :data:`MAX_SEEDS` of them."""
    ranges: list[range] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-"))
                if lo > hi:
                    raise ValueError
                ranges.append(range(lo, hi + 1))
            else:
                ranges.append(range(int(part), int(part) + 1))
    except ValueError:
        raise ValueError(
            f"cannot read the seeds {text!r}; expected a range like '0-9', a list like '0,3,5', "
            "or both '0-4,8'."
        ) from None
    if sum(len(r) for r in ranges) > MAX_SEEDS:
        raise ValueError(f"the seeds {text!r} name more than {MAX_SEEDS:,} seeds; name fewer.")
    seeds = {seed for r in ranges for seed in r}
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds must be non-negative integers; got {text!r}.")
    return sorted(seeds)


def name_key(name: str) -> int:
    """A 63-bit integer of a name (BLAKE2b), to enter names into :func:`derive_seed`."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") >> 1


def seed_block(*parts: int, count: int) -> list[int]:
    """``count`` consecutive per-sample seeds starting at a base derived from ``parts``."""
    base = derive_seed(*parts) >> 2
    return [base + n for n in range(count)]
