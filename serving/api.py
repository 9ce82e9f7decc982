"""The OpenAI-compatible HTTP API in front of an :class:`~spotrain.serving.engine.Engine`.

``POST /v1/completions`` (``stream: true`` as server-sent events), ``POST /v1/chat/completions``
(when the tokenizer has a chat template), ``GET /v1/models``, ``GET /health``, ``GET /metrics``
(Prometheus). Bearer-key auth when keys are set (compared in constant time, never logged). Every
error is an OpenAI-style JSON body with the right status: 400 bad JSON, 401 missing or wrong key,
404 unknown model, 413 too large, 422 invalid field, 429 over a limit, 503 stopped; a bad request
never takes the server down.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from .engine import Engine, Generation, Params


@dataclass
class Limits:
    max_prompt_tokens: int = 2048
    max_new_tokens: int = 512
    max_concurrency: int = 64  # requests in flight; more get 429
    rate_limit_per_minute: int = 0  # per API key; 0: none
    max_body_bytes: int = 1 << 20
    timeout_s: float = 120.0


@dataclass
class State:
    """What the server is doing beyond answering: a reason to refuse everything (a budget stop)."""

    stopped: str | None = None
    in_flight: int = 0
    buckets: dict = field(default_factory=dict)  # key -> (tokens, last refill)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code


def error_body(
    status: int, message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: Literal[1] = 1
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)


def create_app(
    engine: Engine,
    model_id: str,
    keys: list[str] | None = None,
    limits: Limits | None = None,
    state: State | None = None,
):
    limits = limits or Limits()
    state = state or State()
    keys = [k for k in (keys or []) if k]
    reg = CollectorRegistry()
    requests = Counter("spotrain_requests", "Requests answered", ["endpoint", "code"], registry=reg)
    latency = Histogram(
        "spotrain_request_seconds",
        "Request latency",
        ["endpoint"],
        registry=reg,
        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    )
    ttft = Histogram(
        "spotrain_time_to_first_token_seconds",
        "Time to first token",
        registry=reg,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    )
    tokens_in = Counter("spotrain_prompt_tokens", "Prompt tokens", registry=reg)
    tokens_out = Counter("spotrain_generated_tokens", "Generated tokens", registry=reg)
    batch = Histogram(
        "spotrain_batch_size", "Requests decoded together", registry=reg, buckets=(1, 2, 4, 8, 16, 32, 64)
    )

    app = FastAPI(title="spotrain", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.metrics = reg

    def reply(status: int, body: dict, endpoint: str) -> JSONResponse:
        requests.labels(endpoint, str(status)).inc()
        return JSONResponse(body, status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return reply(
            exc.status, error_body(exc.status, exc.message, exc.type, exc.param, exc.code), request.url.path
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {"msg": "invalid request", "loc": ()}
        if first.get("type") in ("json_invalid", "model_attributes_type") or first.get("loc") == ("body",):
            return reply(
                400,
                error_body(400, "the body is not a JSON object — send JSON", "invalid_request_error"),
                request.url.path,
            )
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = ".".join(loc) or None
        return reply(
            422,
            error_body(422, f"{param or 'body'}: {first.get('msg')}", "invalid_request_error", param),
            request.url.path,
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):  # never leaks a traceback, never stops the server
        return reply(
            500, error_body(500, f"internal error ({type(exc).__name__})", "server_error"), request.url.path
        )

    @app.middleware("http")
    async def _size_limit(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limits.max_body_bytes):
            return reply(
                413,
                error_body(413, f"the body is over {limits.max_body_bytes:,} bytes", "invalid_request_error"),
                request.url.path,
            )
        return await call_next(request)

    def authorize(request: Request) -> str:
        if not keys:
            return ""
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise ApiError(
                401,
                "no API key — send Authorization: Bearer KEY",
                "invalid_request_error",
                code="missing_api_key",
            )
        given = auth[7:].strip().encode()
        ok = False
        for k in keys:  # every key compared, in constant time
            ok |= hmac.compare_digest(given, k.encode())
        if not ok:
            raise ApiError(401, "invalid API key", "invalid_request_error", code="invalid_api_key")
        return given.decode(errors="replace")

    def throttle(key: str) -> None:
        if state.stopped:
            raise ApiError(503, f"the service is stopped: {state.stopped}", "service_unavailable")
        if limits.rate_limit_per_minute:
            now = time.monotonic()
            tokens, last = state.buckets.get(key, (float(limits.rate_limit_per_minute), now))
            tokens = min(
                limits.rate_limit_per_minute, tokens + (now - last) * limits.rate_limit_per_minute / 60
            )
            if tokens < 1:
                raise ApiError(
                    429,
                    f"rate limit of {limits.rate_limit_per_minute} requests a minute reached",
                    "rate_limit_error",
                    code="rate_limit_exceeded",
                )
            state.buckets[key] = (tokens - 1, now)
        if state.in_flight >= limits.max_concurrency:
            raise ApiError(
                429,
                f"{limits.max_concurrency} requests in flight — retry",
                "rate_limit_error",
                code="too_many_requests",
            )

    def params(body: _Sampling, prompt_len: int) -> Params:
        if body.model != model_id:
            raise ApiError(
                404,
                f"model {body.model!r} does not exist — this server serves {model_id!r}",
                "invalid_request_error",
                "model",
                "model_not_found",
            )
        if prompt_len > limits.max_prompt_tokens:
            raise ApiError(
                413,
                f"the prompt has {prompt_len} tokens; at most {limits.max_prompt_tokens}",
                "invalid_request_error",
                "prompt",
                "prompt_too_long",
            )
        new = body.max_tokens if body.max_tokens is not None else 16
        if new > limits.max_new_tokens:
            raise ApiError(
                422,
                f"max_tokens is {new}; at most {limits.max_new_tokens}",
                "invalid_request_error",
                "max_tokens",
            )
        if prompt_len + new > engine.context:
            raise ApiError(
                422,
                f"prompt ({prompt_len} tokens) + max_tokens ({new}) exceed the model's context of "
                f"{engine.context} tokens",
                "invalid_request_error",
                "max_tokens",
                "context_length_exceeded",
            )
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        if len(stop) > 4 or any(not s for s in stop):
            raise ApiError(422, "stop: up to 4 non-empty strings", "invalid_request_error", "stop")
        return Params(new, body.temperature, body.top_p, tuple(stop), body.seed)

    async def run(ids: list[int], p: Params, stream_to: asyncio.Queue | None = None):
        """Submit one generation; (it, a future that resolves when it ends)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        g = Generation(ids, p)
        if stream_to is not None:
            g.on_text = lambda d: loop.call_soon_threadsafe(stream_to.put_nowait, d)
        g.on_done = lambda gen: loop.call_soon_threadsafe(_settle, done, gen, stream_to)
        state.in_flight += 1
        engine.submit(g)
        return g, done

    def _settle(done, gen, stream_to) -> None:
        state.in_flight -= 1
        if not done.done():
            done.set_result(gen)
        if stream_to is not None:
            stream_to.put_nowait(None)
        tokens_in.inc(len(gen.prompt_ids))
        tokens_out.inc(len(gen.ids))
        batch.observe(gen.batch_size or 1)
        if gen.first_token_at is not None:
            ttft.observe(gen.first_token_at - gen.submitted)

    def usage(gens: list[Generation]) -> dict:
        p = sum(len(g.prompt_ids) for g in gens)
        c = sum(len(g.ids) for g in gens)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    async def answer(endpoint: str, body: _Sampling, prompts: list[list[int]], chat: bool):
        t0 = time.monotonic()
        p = params(body, max(len(x) for x in prompts))
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        if body.stream:
            if len(prompts) != 1:
                raise ApiError(422, "stream: one prompt at a time", "invalid_request_error", "prompt")
            q: asyncio.Queue = asyncio.Queue()
            g, done = await run(prompts[0], p, q)

            def chunk(delta: str | None, finish: str | None) -> str:
                if chat:
                    c = {
                        "index": 0,
                        "delta": {"content": delta} if delta is not None else {},
                        "finish_reason": finish,
                    }
                else:
                    c = {"index": 0, "text": delta or "", "logprobs": None, "finish_reason": finish}
                return (
                    "data: "
                    + json.dumps(
                        {
                            "id": rid,
                            "object": obj + ".chunk" if chat else obj,
                            "created": created,
                            "model": model_id,
                            "choices": [c],
                        }
                    )
                    + "\n\n"
                )

            async def events():
                if chat:
                    yield (
                        "data: "
                        + json.dumps(
                            {
                                "id": rid,
                                "object": "chat.completion.chunk",
                                "created": created,
                                "model": model_id,
                                "choices": [
                                    {"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}
                                ],
                            }
                        )
                        + "\n\n"
                    )
                while True:
                    try:
                        d = await asyncio.wait_for(q.get(), timeout=limits.timeout_s)
                    except asyncio.TimeoutError:
                        yield (
                            "data: " + json.dumps(error_body(504, "generation timed out", "timeout")) + "\n\n"
                        )
                        break
                    if d is None:
                        break
                    yield chunk(d, None)
                yield chunk(None, g.finish_reason or "stop")
                yield "data: [DONE]\n\n"
                latency.labels(endpoint).observe(time.monotonic() - t0)

            requests.labels(endpoint, "200").inc()
            return StreamingResponse(events(), media_type="text/event-stream")
        futures = [await run(x, p) for x in prompts]
        try:
            gens = [await asyncio.wait_for(asyncio.shield(f), timeout=limits.timeout_s) for _, f in futures]
        except asyncio.TimeoutError:
            raise ApiError(504, f"generation took over {limits.timeout_s:g} s", "timeout") from None
        failed = [g for g in gens if g.error]
        if failed:
            raise ApiError(500, f"generation failed ({failed[0].error.split(':')[0]})", "server_error")
        if chat:
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": g.text},
                    "finish_reason": g.finish_reason,
                }
                for i, g in enumerate(gens)
            ]
        else:
            choices = [
                {"index": i, "text": g.text, "logprobs": None, "finish_reason": g.finish_reason}
                for i, g in enumerate(gens)
            ]
        latency.labels(endpoint).observe(time.monotonic() - t0)
        return reply(
            200,
            {
                "id": rid,
                "object": obj,
                "created": created,
                "model": model_id,
                "choices": choices,
                "usage": usage(gens),
            },
            endpoint,
        )

    @app.get("/health")
    async def health():
        if state.stopped:
            return reply(
                503,
                error_body(503, f"the service is stopped: {state.stopped}", "service_unavailable"),
                "/health",
            )
        return {"status": "ok", "model": model_id, "in_flight": state.in_flight}

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(reg), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(request: Request):
        authorize(request)
        return reply(
            200,
            {
                "object": "list",
                "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "spotrain"}],
            },
            "/v1/models",
        )

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        throttle(authorize(request))
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts or len(prompts) > 16:
            raise ApiError(
                422, "prompt: a string or a list of 1 to 16 strings", "invalid_request_error", "prompt"
            )
        return await answer("/v1/completions", body, [engine.encode(x) for x in prompts], chat=False)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        throttle(authorize(request))
        if not engine.chat:
            raise ApiError(
                400,
                f"model {model_id!r} has no chat template — use /v1/completions",
                "invalid_request_error",
                "messages",
                "chat_not_supported",
            )
        ids = engine.chat_prompt([m.model_dump() for m in body.messages])
        return await answer("/v1/chat/completions", body, [ids], chat=True)

    return app
