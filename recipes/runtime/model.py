"""Build the model a recipe describes: a transformers config (gpt2, llama, bert) or a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spotrain.errors import RecipeError
from spotrain.recipes.schema import Recipe


@dataclass(frozen=True)
class ModelInfo:
    params: int
    non_embedding_params: int
    flops_per_token: float  # training FLOPs (forward + backward) per token at data.seq_len
    layers: int
    hidden: int


def _config(recipe: Recipe, vocab: int, ids: dict):
    from transformers import BertConfig, GPT2Config, LlamaConfig

    m = recipe.model
    if m.vocab_size is not None and m.vocab_size < vocab:
        raise RecipeError(
            [
                f"model.vocab_size ({m.vocab_size}) is smaller than the tokenizer's vocabulary ({vocab}) — "
                "raise it or leave it null"
            ]
        )
    v = m.vocab_size or vocab
    common = dict(vocab_size=v, tie_word_embeddings=m.tie_embeddings, pad_token_id=ids["pad"])
    if m.family == "gpt2":
        return GPT2Config(
            n_positions=m.context,
            n_embd=m.hidden,
            n_layer=m.layers,
            n_head=m.heads,
            n_inner=m.ffn_size(),
            resid_pdrop=m.dropout,
            embd_pdrop=m.dropout,
            attn_pdrop=m.dropout,
            bos_token_id=ids["eos"],
            eos_token_id=ids["eos"],
            **common,
        )
    if m.family == "llama":
        return LlamaConfig(
            hidden_size=m.hidden,
            intermediate_size=m.ffn_size(),
            num_hidden_layers=m.layers,
            num_attention_heads=m.heads,
            num_key_value_heads=m.kv_heads or m.heads,
            max_position_embeddings=m.context,
            attention_dropout=m.dropout,
            bos_token_id=ids["eos"],
            eos_token_id=ids["eos"],
            **common,
        )
    return BertConfig(
        hidden_size=m.hidden,
        num_hidden_layers=m.layers,
        num_attention_heads=m.heads,
        intermediate_size=m.ffn_size(),
        max_position_embeddings=m.context,
        type_vocab_size=1,
        hidden_dropout_prob=m.dropout,
        attention_probs_dropout_prob=m.dropout,
        **common,
    )


def build_model(recipe: Recipe, vocab: int, ids: dict, base_dir: Path):
    """Return (model, ModelInfo). Initialisation is seeded by the caller (torch.manual_seed)."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    mlm = recipe.train.objective == "mlm"
    auto = AutoModelForMaskedLM if mlm else AutoModelForCausalLM
    if recipe.model.from_:
        src = Path(recipe.model.from_).expanduser()
        src = src if src.is_absolute() else base_dir / src
        try:
            model = auto.from_pretrained(str(src) if src.exists() else recipe.model.from_)
        except (OSError, ValueError) as exc:
            raise RecipeError(
                [
                    f"model.from {recipe.model.from_!r}: cannot load ({str(exc).splitlines()[0]}) — give a "
                    "local model folder or a reachable hub id"
                ]
            ) from None
        if model.get_input_embeddings().num_embeddings < vocab:
            model.resize_token_embeddings(vocab)
        ctx = getattr(model.config, "max_position_embeddings", None) or getattr(
            model.config, "n_positions", None
        )
        if ctx and recipe.data.seq_len > ctx:
            raise RecipeError(
                [
                    f"data.seq_len ({recipe.data.seq_len}) is above the model's context ({ctx}) — lower "
                    "data.seq_len"
                ]
            )
    else:
        config = _config(recipe, vocab, ids)
        check_fits(recipe, config.vocab_size)
        model = auto.from_config(config)
    return model, model_info(model, recipe.data.seq_len)


TRAIN_BYTES_PER_PARAM = 16  # fp32 weights and gradients, two AdamW moments


def device_memory_bytes() -> tuple[int, str]:
    """Memory training can use here: the first GPU's, or this machine's available RAM."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(0)[1]), f"GPU {torch.cuda.get_device_name(0)}"
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
        return info.get("MemAvailable", info["MemTotal"]), "available RAM"
    except (OSError, KeyError, ValueError, IndexError):
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "RAM"


def check_fits(recipe: Recipe, vocab: int) -> None:
    """Refuse a model whose training state alone cannot fit here (parameters counted from the
    architecture, nothing allocated) — a one-line error instead of an allocator crash minutes in."""
    params = recipe.model.param_counts(vocab)[0]
    need = params * TRAIN_BYTES_PER_PARAM
    have, what = device_memory_bytes()
    if need > have:
        raise RecipeError(
            [
                f"model: {params:,} parameters need ~{need / 1e9:,.1f} GB to train ({TRAIN_BYTES_PER_PARAM} "
                f"B each for weights, gradients and AdamW state) but this machine has {have / 1e9:,.1f} GB "
                f"({what}) — make the model smaller (model.hidden, model.layers) or run it where it fits "
                "(`spotrain plan` picks such an offer)"
            ]
        )


def model_info(model, seq_len: int) -> ModelInfo:
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    emb = sum(
        p.numel()
        for n, p in model.named_parameters()
        if "embed" in n or n.endswith(("wte.weight", "wpe.weight"))
    )
    non_emb = params - emb
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer")
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd")
    vocab = model.get_input_embeddings().num_embeddings
    # PaLM appendix B: 6 FLOPs per weight per token (non-embedding weights plus the output
    # projection onto the vocabulary) plus 12·L·T·d for the attention scores and values.
    flops = 6 * (non_emb + vocab * hidden) + 12 * layers * seq_len * hidden
    return ModelInfo(
        params=params,
        non_embedding_params=non_emb,
        flops_per_token=float(flops),
        layers=layers,
        hidden=hidden,
    )
