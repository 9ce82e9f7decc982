"""SkyPilot's side of the SkyPilot backend, run by SkyPilot's own Python (it lives in its own
virtualenv: its pins conflict with the training stack). Standalone: imports no spotrain code.

Protocol: one JSON request per line on stdin ``{"op": ..., ...}``, one JSON reply per line on
stdout prefixed ``BRIDGE:`` (SkyPilot prints freely to stdout/stderr; everything else is
ignored). A reply is ``{"ok": true, ...}`` or ``{"ok": false, "kind": K, "error": LINE}`` with K
one of ``no_cloud``, ``unavailable``, ``rejected``, ``unreachable``, ``not_found``, ``error``.

Launches are asynchronous: ``launch`` submits and returns the request id; a thread waits for
the result, which ``launch_result`` reports. The SDK starts a local API server on first use;
when none was running before, ``close`` stops it again (spotrain leaves no server behind).
"""

import contextlib
import io
import json
import os
import sys
import threading
import traceback

# this file's folder holds spotrain's own backends: it must not shadow SkyPilot's packages
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
for _k, _v in {
    "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
    "DO_NOT_TRACK": "1",
    "AWS_EC2_METADATA_DISABLED": "true",
}.items():
    os.environ[_k] = _v  # never report usage, never probe cloud metadata — also for the API server we start

import sky  # noqa: E402

_OUT = sys.stdout
_LOCK = threading.Lock()
_results: dict = {}
_started_server = False


def _reply(obj: dict) -> None:
    with _LOCK:
        _OUT.write("BRIDGE:" + json.dumps(obj, default=str) + "\n")
        _OUT.flush()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:500]
    return type(exc).__name__


def classify(exc: BaseException) -> tuple[str, str]:
    msg = _first_line(exc)
    names = {c.__name__ for c in type(exc).__mro__}
    if "NoCloudAccessError" in names or "No cloud is enabled" in msg or "no cloud" in msg.lower():
        return "no_cloud", msg
    if "ResourcesUnavailableError" in names:
        failover = getattr(exc, "failover_history", None) or []
        reasons = "; ".join(_first_line(e) for e in failover[-3:])
        return "unavailable", msg + (f" ({reasons})" if reasons and reasons not in msg else "")
    if "ApiServerConnectionError" in names or ("ConnectionError" in names and "API server" in msg):
        return "unreachable", msg
    if names & {
        "ResourcesMismatchError",
        "InvalidSkyPilotConfigError",
        "NotSupportedError",
        "ValueError",
        "InvalidCloudConfigs",
        "InvalidCloudCredentials",
        "ValidationError",
    }:
        return "rejected", msg
    if names & {"ClusterDoesNotExist", "ClusterNotUpError", "JobNotFoundError"}:
        return "not_found", msg
    return "error", f"{type(exc).__name__}: {msg}"


def _quiet(fn, *a, **kw):
    """Run an SDK call with its chatter sent to stderr (stdout carries the protocol)."""
    with contextlib.redirect_stdout(sys.stderr):
        return fn(*a, **kw)


def _server_running() -> bool:
    from sky.server import common

    try:
        info = common.get_api_server_status()
    except Exception:  # noqa: BLE001 - unreachable counts as not running
        return False
    return info.status != common.ApiServerStatus.UNHEALTHY


def _ensure_server() -> None:
    """Note whether this process will start the local API server (so that ``close`` stops it)."""
    global _started_server
    from sky.server import common

    if not _started_server and common.is_api_server_local() and not _server_running():
        _started_server = True


def _wait_launch(rid: str) -> None:
    try:
        job_id, handle = _quiet(sky.get, rid)
        _results[rid] = {"state": "ok", "job_id": job_id, "head_ip": getattr(handle, "head_ip", None)}
    except BaseException as exc:  # noqa: BLE001 - reported to the controller
        kind, msg = classify(exc)
        _results[rid] = {"state": "error", "kind": kind, "error": msg}


def op_launch(req: dict) -> dict:
    task = sky.Task.from_yaml_config(req["config"])
    _ensure_server()
    rid = _quiet(
        sky.launch,
        task,
        cluster_name=req["cluster"],
        down=True,
        idle_minutes_to_autostop=req.get("idle_minutes", 5),
        retry_until_up=False,
    )
    _results[rid] = {"state": "pending"}
    threading.Thread(target=_wait_launch, args=(rid,), daemon=True).start()
    return {"request_id": rid}


def op_launch_result(req: dict) -> dict:
    rid = req["request_id"]
    if rid not in _results:  # adopted by a new controller: wait on it again
        _results[rid] = {"state": "pending"}
        threading.Thread(target=_wait_launch, args=(rid,), daemon=True).start()
    return dict(_results[rid])


def op_api_cancel(req: dict) -> dict:
    _ensure_server()
    _quiet(sky.get, sky.api_cancel(req["request_id"]))
    return {}


def op_validate(req: dict) -> dict:
    task = sky.Task.from_yaml_config(req["config"])
    return {"config": task.to_yaml_config(use_user_specified_yaml=True)}


def op_enabled(req: dict) -> dict:
    _ensure_server()
    from sky.client import sdk

    clouds = [str(c) for c in _quiet(sky.get, sdk.enabled_clouds())]
    if (
        not clouds
    ):  # nothing checked yet on a fresh API server (or another client's check in flight): check once
        try:
            _quiet(sky.get, sdk.check(None, False))
        except Exception:  # noqa: BLE001 - the answer below says what is enabled
            pass
        clouds = [str(c) for c in _quiet(sky.get, sdk.enabled_clouds())]
    return {"clouds": clouds}


def op_cluster(req: dict) -> dict:
    _ensure_server()
    mode = sky.StatusRefreshMode.FORCE if req.get("refresh") else sky.StatusRefreshMode.NONE
    recs = _quiet(sky.get, sky.status([req["cluster"]], refresh=mode))
    if not recs:
        return {"status": None}
    st = recs[0]["status"]
    return {"status": getattr(st, "value", str(st))}


def op_job(req: dict) -> dict:
    _ensure_server()
    got = _quiet(sky.get, sky.job_status(req["cluster"], [int(req["job_id"])]))
    st = got.get(int(req["job_id"])) if got else None
    if st is None and got:
        st = next(iter(got.values()))
    return {"status": getattr(st, "value", None if st is None else str(st))}


def op_logs(req: dict) -> dict:
    _ensure_server()
    buf = io.StringIO()
    with contextlib.redirect_stdout(sys.stderr):
        sky.tail_logs(
            req["cluster"], int(req["job_id"]), follow=False, tail=int(req.get("tail", 0)), output_stream=buf
        )
    return {"text": buf.getvalue()}


def op_cancel(req: dict) -> dict:
    _ensure_server()
    _quiet(sky.get, sky.cancel(req["cluster"], job_ids=[int(req["job_id"])]))
    return {}


def op_down(req: dict) -> dict:
    _ensure_server()
    try:
        _quiet(sky.get, sky.down(req["cluster"], purge=bool(req.get("purge"))))
    except BaseException as exc:  # noqa: BLE001
        kind, msg = classify(exc)
        if kind != "not_found" and "does not exist" not in msg:
            raise
    return {}


def op_cost(req: dict) -> dict:
    """SkyPilot's own bill for a cluster (``sky cost-report``): dollars and seconds, newest record."""
    _ensure_server()
    rows = _quiet(sky.get, sky.cost_report(days=req.get("days", 30)))
    mine = [r for r in rows if r.get("name") == req["cluster"]]
    if not mine:
        return {"cost": None}
    r = max(mine, key=lambda r: r.get("launched_at") or 0)
    return {"cost": r.get("total_cost"), "duration": r.get("duration"), "launched_at": r.get("launched_at")}


def op_jobs_launch(req: dict) -> dict:
    task = sky.Task.from_yaml_config(req["config"])
    _ensure_server()
    rid = _quiet(sky.jobs.launch, task, name=req["name"])
    _results[rid] = {"state": "pending"}

    def wait():
        try:
            job_ids, _ = _quiet(sky.get, rid)
            _results[rid] = {"state": "ok", "job_id": (job_ids or [None])[0]}
        except BaseException as exc:  # noqa: BLE001
            kind, msg = classify(exc)
            _results[rid] = {"state": "error", "kind": kind, "error": msg}

    threading.Thread(target=wait, daemon=True).start()
    return {"request_id": rid}


def _record(r) -> dict:
    if isinstance(r, dict):
        return r
    for attr in ("model_dump", "dict", "_asdict"):
        if hasattr(r, attr):
            return getattr(r, attr)()
    return dict(vars(r))


def op_jobs_queue(req: dict) -> dict:
    _ensure_server()
    got = _quiet(
        sky.get,
        sky.jobs.queue_v2(refresh=False, skip_finished=False, job_ids=[int(req["job_id"])], fields=None),
    )
    rows = got[0] if isinstance(got, tuple) else got
    rows = [_record(r) for r in rows]
    rows = [r for r in rows if int(r.get("job_id", -1)) == int(req["job_id"])]
    if not rows:
        return {"status": None}
    r = rows[0]
    st = r.get("status")
    keep = (
        "recovery_count",
        "submitted_at",
        "start_at",
        "end_at",
        "last_recovered_at",
        "failure_reason",
        "cluster_resources",
        "infra",
        "cloud",
        "region",
        "zone",
        "job_duration",
    )
    return {"status": getattr(st, "value", str(st)), **{k: r.get(k) for k in keep if k in r}}


def op_jobs_cost(req: dict) -> dict:
    """SkyPilot's bill for the clusters a managed job used (``sky cost-report``, names ``NAME-ID``)."""
    _ensure_server()
    rows = _quiet(sky.get, sky.cost_report(days=req.get("days", 30)))
    prefix = f"{req['name']}-{req['job_id']}"
    mine = [r for r in rows if str(r.get("name", "")).startswith(prefix)]
    return {
        "cost": sum(r.get("total_cost") or 0 for r in mine) if mine else None,
        "duration": sum(r.get("duration") or 0 for r in mine),
        "clusters": [r.get("name") for r in mine],
    }


def op_jobs_logs(req: dict) -> dict:
    _ensure_server()
    buf = io.StringIO()
    with contextlib.redirect_stdout(sys.stderr):
        sky.jobs.tail_logs(job_id=int(req["job_id"]), follow=False, output_stream=buf)
    return {"text": buf.getvalue()}


def op_jobs_cancel(req: dict) -> dict:
    _ensure_server()
    _quiet(
        sky.get,
        sky.jobs.cancel(
            job_ids=[int(req["job_id"])],
            graceful=bool(req.get("graceful")),
            graceful_timeout=req.get("graceful_timeout"),
        ),
    )
    return {}


def op_close(req: dict) -> dict:
    stopped = False
    if _started_server:
        with contextlib.suppress(Exception):
            _quiet(sky.api_stop)
            stopped = True
    return {"stopped_server": stopped}


OPS = {k[3:]: v for k, v in globals().items() if k.startswith("op_")}


def main() -> int:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        op = OPS.get(req.get("op"))
        if op is None:
            _reply({"ok": False, "kind": "error", "error": f"unknown op {req.get('op')!r}"})
            continue
        try:
            _reply({"ok": True, **op(req)})
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a reply
            kind, msg = classify(exc)
            if os.environ.get("SPOTRAIN_DEBUG"):
                traceback.print_exc(file=sys.stderr)
            _reply({"ok": False, "kind": kind, "error": msg})
        if req.get("op") == "close":
            break
    else:
        op_close({})
    return 0


if __name__ == "__main__":
    sys.exit(main())
