"""The payload shape every throughput bench shares: 20% of spans carry a 20 KB input."""

from __future__ import annotations

import random
import string

BIG_SHARE = 0.2
BIG_BYTES = 20_000


def prompt_text(rng: random.Random, size: int) -> str:
    """Prompt-like text: words from a vocabulary, compressible about as much as real prose."""
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(2000)]
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(words)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)[:size]
