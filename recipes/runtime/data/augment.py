"""Text augmentations: a registry of built-ins plus user functions by dotted path.

An augmentation is ``fn(text: str, rng: random.Random, **args) -> str``. It runs on the
train split only, with an RNG seeded from the recipe seed and the document, so prepared
data is identical on every run.
"""

from __future__ import annotations

import hashlib
import importlib
import random
from typing import Callable, Iterable, Iterator

from spotrain.errors import DataError
from spotrain.recipes.schema.data import AugmentStep

from .documents import Doc

Augmentation = Callable[..., str]
BUILTINS: dict[str, Augmentation] = {}


def register(name: str):
    def deco(fn: Augmentation) -> Augmentation:
        BUILTINS[name] = fn
        return fn

    return deco


@register("whitespace-noise")
def whitespace_noise(text: str, rng: random.Random, rate: float = 0.02) -> str:
    """Randomly double or drop single spaces (robustness to spacing)."""
    out = []
    for ch in text:
        if ch == " ":
            r = rng.random()
            if r < rate / 2:
                continue
            if r < rate:
                out.append(" ")
        out.append(ch)
    return "".join(out)


@register("case-noise")
def case_noise(text: str, rng: random.Random, rate: float = 0.02) -> str:
    """Flip the case of a fraction of letters."""
    return "".join(ch.swapcase() if ch.isalpha() and rng.random() < rate else ch for ch in text)


@register("char-swap")
def char_swap(text: str, rng: random.Random, rate: float = 0.01) -> str:
    """Swap adjacent letters inside words (typo noise)."""
    chars = list(text)
    i = 0
    while i < len(chars) - 1:
        if chars[i].isalpha() and chars[i + 1].isalpha() and rng.random() < rate:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
            i += 2
        else:
            i += 1
    return "".join(chars)


def resolve(name: str) -> Augmentation:
    if name in BUILTINS:
        return BUILTINS[name]
    module, sep, attr = name.partition(":")
    if not sep:
        module, _, attr = name.rpartition(".")
    if not module or not attr:
        raise DataError(
            f"augmentation {name!r}: not a built-in ({', '.join(sorted(BUILTINS))}) nor "
            "package.module:function"
        )
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise DataError(
            f"augmentation {name!r}: cannot import ({exc}) — check the dotted path and that the module is "
            "installed"
        ) from None
    if not callable(fn):
        raise DataError(f"augmentation {name!r} is not callable")
    return fn


def augment(docs: Iterable[Doc], steps: list[AugmentStep], seed: int) -> Iterator[Doc]:
    fns = [(step, resolve(step.fn)) for step in steps]
    for doc in docs:
        out = [doc]
        for i, (step, fn) in enumerate(fns):
            rng = random.Random(
                int.from_bytes(hashlib.sha256(f"{seed}:{i}:".encode() + doc.key()).digest()[:8], "big")
            )
            if rng.random() >= step.prob:
                continue
            new = doc.map(lambda t: _call(fn, step, t, rng))
            if step.copies:
                out.append(new)
            else:
                out[0] = doc = new
        yield from out


def _call(fn: Augmentation, step: AugmentStep, text: str, rng: random.Random) -> str:
    result = fn(text, rng, **step.args)
    if not isinstance(result, str):
        raise DataError(f"augmentation {step.fn!r} returned {type(result).__name__}, expected str")
    return result
