"""The ``model`` section: architecture from a transformers config, or a checkpoint to fine-tune."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import Section


class Model(Section):
    family: Annotated[
        Literal["gpt2", "llama", "bert"],
        Field(description="Architecture family (transformers config class)."),
    ] = "gpt2"
    from_: Annotated[
        str | None,
        Field(
            alias="from",
            description=(
                "Fine-tune from a local model directory or hub id instead of initialising from scratch; "
                "architecture fields are then ignored."
            ),
        ),
    ] = None
    layers: Annotated[int, Field(ge=1, le=512, description="Transformer blocks.")] = 12
    heads: Annotated[int, Field(ge=1, le=512, description="Attention heads (must divide `hidden`).")] = 12
    kv_heads: Annotated[
        int | None,
        Field(ge=1, description="llama: key/value heads for grouped-query attention; null = `heads`."),
    ] = None
    hidden: Annotated[int, Field(ge=8, description="Hidden (embedding) size.")] = 768
    ffn: Annotated[
        int | None,
        Field(
            ge=8,
            description=(
                "Feed-forward inner size; null = 4 × hidden (gpt2, bert) or 8/3 × hidden rounded to 64 "
                "(llama)."
            ),
        ),
    ] = None
    context: Annotated[int, Field(ge=8, description="Maximum sequence length (position embeddings).")] = 1024
    vocab_size: Annotated[
        int | None,
        Field(ge=8, description="Vocabulary size; null = the tokenizer's. Must be ≥ the tokenizer's."),
    ] = None
    dropout: Annotated[
        float, Field(ge=0, lt=1, description="Dropout probability (residual, attention, embeddings).")
    ] = 0.0
    tie_embeddings: Annotated[bool, Field(description="Share input and output embedding weights.")] = True

    @model_validator(mode="after")
    def _shape(self) -> "Model":
        if self.from_ is None:
            if self.hidden % self.heads:
                raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
            if self.kv_heads is not None and self.heads % self.kv_heads:
                raise ValueError(f"heads ({self.heads}) must be divisible by kv_heads ({self.kv_heads})")
        return self

    def param_counts(self, vocab: int) -> tuple[int, int]:
        """(total, non-embedding) parameters of the model the runtime builds (exact, allocates nothing)."""
        d, L, f, V, C = self.hidden, self.layers, self.ffn_size(), vocab, self.context
        head = 0 if self.tie_embeddings else V * d
        if self.family == "gpt2":
            layer = 4 * d * d + 2 * d * f + 9 * d + f
            emb = V * d + C * d
            total = emb + L * layer + 2 * d + head
        elif self.family == "llama":
            kv = d // self.heads * (self.kv_heads or self.heads)
            layer = 2 * d * d + 2 * d * kv + 3 * d * f + 2 * d
            emb = V * d
            total = emb + L * layer + d + head
        else:  # bert + MLM head (decoder weight tied to the word embeddings)
            layer = 4 * d * d + 2 * d * f + 9 * d + f
            emb = V * d + C * d + d + 2 * d
            total = emb + L * layer + d * d + 3 * d + V + (0 if self.tie_embeddings else V * d)
        return total, total - emb

    def ffn_size(self) -> int:
        if self.ffn is not None:
            return self.ffn
        if self.family == "llama":
            return int(-(-(8 * self.hidden // 3) // 64) * 64)
        return 4 * self.hidden
