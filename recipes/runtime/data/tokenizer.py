"""Tokenizers: train a byte-level BPE on the train split, or load one from a folder/hub id."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from spotrain.errors import DataError

EOS, PAD, MASK = "<|endoftext|>", "<pad>", "<mask>"


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int, out_dir: Path):
    """Train a byte-level BPE and save it as a transformers fast tokenizer in ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS, PAD, MASK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD, mask_token=MASK, unk_token=None
    )
    fast.save_pretrained(out_dir)
    return fast


def load_pretrained(path: str, base_dir: Path):
    from transformers import AutoTokenizer

    local = Path(path).expanduser()
    local = local if local.is_absolute() else base_dir / local
    target = str(local) if local.exists() else path
    try:
        tok = AutoTokenizer.from_pretrained(target)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"data.tokenizer.path {path!r}: cannot load a tokenizer ({str(exc).splitlines()[0]}) — give a "
            "folder with tokenizer.json or a reachable hub id"
        ) from None
    if tok.eos_token is None and tok.sep_token is not None:
        tok.eos_token = tok.sep_token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def special_ids(tok) -> dict[str, int | None]:
    return {"eos": tok.eos_token_id, "pad": tok.pad_token_id, "mask": tok.mask_token_id}
