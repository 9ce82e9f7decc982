"""The ``data`` section: sources, cleaning, augmentation, split, tokenizer, packing."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from .base import Section


class FilesSource(Section):
    type: Annotated[
        Literal["files"],
        Field(description="Local files or globs (relative paths resolve against the recipe's folder)."),
    ] = "files"
    paths: Annotated[
        list[str],
        Field(min_length=1, description="Files or glob patterns (`**` recurses), e.g. `data/*.jsonl`."),
    ]
    format: Annotated[
        Literal["text", "jsonl"],
        Field(description="`text`: plain UTF-8 text; `jsonl`: one JSON object per line."),
    ] = "text"
    field: Annotated[str, Field(description="JSONL: the field holding the document text (clm/mlm).")] = "text"
    prompt_field: Annotated[
        str, Field(description="JSONL for the `sft` objective: the field holding the prompt.")
    ] = "prompt"
    response_field: Annotated[
        str, Field(description="JSONL for the `sft` objective: the field holding the response.")
    ] = "response"
    split_on: Annotated[
        Literal["file", "line", "blank-line"],
        Field(
            description="Plain text: one document per file, per line, or per blank-line-separated paragraph."
        ),
    ] = "file"


class StdlibSource(Section):
    type: Annotated[
        Literal["stdlib"],
        Field(description="Python standard-library sources: text every machine with Python has offline."),
    ] = "stdlib"
    include: Annotated[
        list[str],
        Field(min_length=1, description="Globs relative to the standard library folder, e.g. `json/*.py`."),
    ] = ["*.py"]
    exclude: Annotated[
        list[str],
        Field(description="Globs to leave out (matched against the path relative to the standard library)."),
    ] = []


Source = Annotated[Union[FilesSource, StdlibSource], Field(discriminator="type")]


class NearDedup(Section):
    enabled: Annotated[bool, Field(description="Remove near-duplicate documents with MinHash LSH.")] = True
    threshold: Annotated[
        float,
        Field(
            gt=0,
            le=1,
            description=(
                "Estimated Jaccard similarity of word shingles above which a document is a near duplicate "
                "of an earlier one."
            ),
        ),
    ] = 0.85
    num_perm: Annotated[
        int, Field(ge=16, le=1024, description="MinHash permutations (more = more accurate, slower).")
    ] = 128
    shingle_words: Annotated[int, Field(ge=1, le=32, description="Words per shingle.")] = 5


class Clean(Section):
    normalize: Annotated[
        Literal["NFC", "NFKC", "NFD", "NFKD", "none"],
        Field(description="Unicode normalisation form applied to every document."),
    ] = "NFC"
    strip_control: Annotated[
        bool, Field(description="Remove control characters (keeps newline and tab).")
    ] = True
    dedup_exact: Annotated[
        bool, Field(description="Drop documents whose text is identical to an earlier one.")
    ] = True
    near_dedup: Annotated[NearDedup, Field(description="Near-duplicate removal (MinHash LSH).")] = NearDedup()
    min_chars: Annotated[
        int, Field(ge=0, description="Drop documents shorter than this many characters (after cleaning).")
    ] = 1
    max_chars: Annotated[
        int | None,
        Field(ge=1, description="Drop documents longer than this many characters; null keeps all."),
    ] = None


class AugmentStep(Section):
    fn: Annotated[
        str,
        Field(
            description=(
                "A built-in augmentation (`whitespace-noise`, `case-noise`, `char-swap`) or a user function "
                "`package.module:function` taking (text, rng, **args) and returning text."
            )
        ),
    ]
    prob: Annotated[
        float,
        Field(ge=0, le=1, description="Probability that a training document is augmented by this step."),
    ] = 1.0
    copies: Annotated[
        bool,
        Field(description="Add the augmented text as an extra document instead of replacing the original."),
    ] = False
    args: Annotated[dict, Field(description="Keyword arguments passed to the function.")] = {}


class Split(Section):
    val: Annotated[
        float,
        Field(
            ge=0,
            lt=1,
            description=(
                "Fraction of documents for validation (by content hash: stable across runs and machines)."
            ),
        ),
    ] = 0.05
    test: Annotated[float, Field(ge=0, lt=1, description="Fraction of documents for test.")] = 0.05
    salt: Annotated[
        str, Field(description="Changes the split assignment while keeping it deterministic.")
    ] = ""

    @model_validator(mode="after")
    def _fractions(self) -> "Split":
        if self.val + self.test >= 1:
            raise ValueError(f"val + test must be below 1 (got {self.val + self.test:g}); lower one of them")
        return self


class BPETokenizer(Section):
    type: Annotated[
        Literal["bpe"], Field(description="Train a byte-level BPE tokenizer on the train split.")
    ] = "bpe"
    vocab_size: Annotated[
        int,
        Field(
            ge=300,
            le=1_000_000,
            description="Vocabulary size including special tokens (≥ 300: 256 bytes + specials + merges).",
        ),
    ] = 8192
    min_frequency: Annotated[int, Field(ge=1, description="Minimum pair frequency for a merge.")] = 2


class PretrainedTokenizer(Section):
    type: Annotated[
        Literal["pretrained"],
        Field(description="Load a tokenizer from a local directory (tokenizer.json) or a hub id."),
    ] = "pretrained"
    path: Annotated[str, Field(description="Local tokenizer directory (relative to the recipe) or hub id.")]


Tokenizer = Annotated[Union[BPETokenizer, PretrainedTokenizer], Field(discriminator="type")]


class Data(Section):
    sources: Annotated[
        list[Source], Field(min_length=1, description="Where documents come from; each entry has a `type`.")
    ]
    clean: Annotated[Clean, Field(description="Cleaning and filtering applied to every document.")] = Clean()
    augment: Annotated[
        list[AugmentStep], Field(description="Augmentations applied to the train split only, in order.")
    ] = []
    split: Annotated[Split, Field(description="Deterministic train/val/test split by content hash.")] = (
        Split()
    )
    tokenizer: Annotated[Tokenizer, Field(description="Tokenizer to train or load.")] = BPETokenizer()
    seq_len: Annotated[
        int,
        Field(
            ge=8,
            le=1_048_576,
            description="Tokens per packed training block (must not exceed `model.context`).",
        ),
    ] = 512
    max_documents: Annotated[
        int | None,
        Field(
            ge=1,
            description="Keep at most this many documents after cleaning (in source order); null keeps all.",
        ),
    ] = None
