"""Text generation for the server, with dynamic batching.

Requests wait in a queue; one worker thread takes every request waiting (up to ``max_batch``) and
decodes them together: prompts left-padded, one forward pass per step for the whole batch with a
KV cache, each request with its own sampling, stop strings and length. A request's text is handed
back token by token (``on_text``) as it is decoded, so streaming and time-to-first-token come for
free. New requests join the next batch. Pure compute: no HTTP here.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from spotrain.errors import SpotrainError


class ModelError(SpotrainError):
    pass


@dataclass
class Params:
    max_new_tokens: int = 16
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Generation:
    """One request's generation; ``on_text(delta)`` is called from the engine's thread with each new
    piece of text, and ``on_done(self)`` once when it ends (``finish_reason`` or ``error`` set)."""

    prompt_ids: list[int]
    params: Params
    on_text: Callable[[str], None] = lambda _d: None
    on_done: Callable[["Generation"], None] = lambda _g: None
    ids: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0  # characters of ``text`` handed to on_text
    finish_reason: str | None = None  # stop | length
    error: str | None = None
    submitted: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    batch_size: int = 0  # how many requests it was decoded with


class Engine:
    """A causal LM from a run's ``model/`` folder (transformers format, with its tokenizer)."""

    def __init__(self, model_dir: Path, max_batch: int = 16, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ModelError(
                f"{model_dir}: no model here (config.json missing) — serve a finished run's folder"
            )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
            self.model = AutoModelForCausalLM.from_pretrained(model_dir)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"{model_dir}: not a causal language model spotrain can serve ({str(exc).splitlines()[0]})"
            ) from None
        self.model.eval()
        self.torch = torch
        import inspect

        params = inspect.signature(self.model.forward).parameters
        # transformers 5 names the KV cache `cache` (`past_key_values` before), and can compute the
        # logits of the last position only
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        cfg = self.model.config
        self.context = int(
            getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 1024
        )
        tok = self.tokenizer
        self.eos = tok.eos_token_id
        self.start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else (self.eos or 0)
        self.max_batch = max_batch
        self.chat = bool(getattr(tok, "chat_template", None))
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="spotrain-engine", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ API for the server
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def chat_prompt(self, messages: list[dict]) -> list[int]:
        out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)

    def submit(self, g: Generation) -> None:
        self._queue.put(g)

    def close(self) -> None:
        self._queue.put(None)

    # ------------------------------------------------------------------ the worker
    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    g = self._queue.get_nowait()
                except queue.Empty:
                    break
                if g is None:
                    self._queue.put(None)
                    break
                batch.append(g)
            try:
                with self.torch.inference_mode():
                    self._generate(batch)
            except Exception as exc:  # noqa: BLE001 - a failed batch must not take the engine down
                for g in batch:
                    if g.finish_reason is None and g.error is None:
                        g.error = f"{type(exc).__name__}: {exc}"
                        g.on_done(g)

    def _generate(self, batch: list[Generation]) -> None:
        torch = self.torch
        for g in batch:
            g.batch_size = len(batch)
        prompts = [g.prompt_ids or [self.start] for g in batch]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(batch), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left-padded: every prompt ends at the last column
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [
            torch.Generator().manual_seed(g.params.seed) if g.params.seed is not None else None for g in batch
        ]
        active = [True] * len(batch)
        steps = max(g.params.max_new_tokens for g in batch)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **self._last_only
        )
        for _ in range(steps):
            logits = out.logits[:, -1, :].float()
            greedy = logits.argmax(-1)
            nxt = greedy.clone()
            for i, g in enumerate(batch):
                if active[i] and g.params.temperature > 0:
                    nxt[i] = self._sample(logits[i], g.params, gens[i])
            now = time.monotonic()
            for i, g in enumerate(batch):
                if active[i]:
                    active[i] = self._advance(g, int(nxt[i]), now)
            if not any(active):
                break
            mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=torch.long)], dim=1)
            pos = pos[:, -1:] + 1
            cache = out.get("cache") if out.get("cache") is not None else out.get("past_key_values")
            out = self.model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=pos,
                use_cache=True,
                **{self._cache_kw: cache},
            )

    def _sample(self, logits, p: Params, gen):
        torch = self.torch
        probs = torch.softmax(logits / p.temperature, dim=-1)
        if p.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < p.top_p  # the smallest set reaching top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return torch.multinomial(probs, 1, generator=gen)[0]

    def _advance(self, g: Generation, token: int, now: float) -> bool:
        """Take ``token`` for ``g``; False once ``g`` has ended."""
        if g.first_token_at is None:
            g.first_token_at = now
        if token == self.eos:
            return self._finish(g, "stop")
        g.ids.append(token)
        g.text = self.tokenizer.decode(g.ids, skip_special_tokens=True)
        for s in g.params.stop:
            at = g.text.find(s)
            if at >= 0:
                g.text = g.text[:at]
                return self._finish(g, "stop")
        if len(g.ids) >= g.params.max_new_tokens:
            return self._finish(g, "length")
        # hold back what may be the start of a stop string, or half of a multi-byte character
        hold = max((len(s) - 1 for s in g.params.stop), default=0)
        ready = len(g.text) - hold
        while ready > g.sent and g.text[ready - 1] == "\ufffd":
            ready -= 1
        if ready > g.sent:
            g.on_text(g.text[g.sent : ready])
            g.sent = ready
        return True

    def _finish(self, g: Generation, reason: str) -> bool:
        if len(g.text) > g.sent:
            g.on_text(g.text[g.sent :])
            g.sent = len(g.text)
        g.finish_reason = reason
        g.on_done(g)
        return False
