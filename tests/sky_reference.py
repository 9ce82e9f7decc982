"""Run by SkyPilot's own Python (see requirements-sky.txt), not by spotrain's.

Reads {"catalogs": DIR, "clouds": [...], "requests": [{"accelerator", "count", "spot", "cloud"}]}
as JSON on stdin, runs the real `sky.Optimizer.optimize` offline on a COPY of the catalogs,
and prints SkyPilot's choice for each request as JSON. Enabling clouds offline needs private
SkyPilot API; that is confined to this test helper (spotrain never depends on it).
"""

import json
import os
import shutil
import sys
import tempfile

os.environ.update(
    SKYPILOT_DISABLE_USAGE_COLLECTION="1",
    DO_NOT_TRACK="1",
    AWS_EC2_METADATA_DISABLED="true",
    SKYPILOT_DISABLE_LOCAL_API_SERVER="1",
)


def main() -> None:
    spec = json.load(sys.stdin)
    runtime = tempfile.mkdtemp(prefix="sky-runtime-")
    os.environ["SKY_RUNTIME_DIR"] = runtime
    os.environ["HOME"] = runtime
    dest = os.path.join(runtime, ".sky", "catalogs", "v8")
    shutil.copytree(
        spec["catalogs"], dest
    )  # SkyPilot writes .meta/ beside the files: never the shared folder

    import sky
    from sky import check as ck
    from sky import global_user_state as gus
    from sky import skypilot_config
    from sky.clouds import cloud as sc

    ws = skypilot_config.get_active_workspace()
    gus.set_allowed_clouds(ck._get_workspace_allowed_clouds(ws), ws)
    for cap in (sc.CloudCapability.COMPUTE, sc.CloudCapability.STORAGE):
        gus.set_enabled_clouds(spec["clouds"], cap, ws)

    import time

    out = []
    for req in spec["requests"] * spec.get("repeat", 1):
        t0 = time.perf_counter()
        try:
            with sky.Dag() as dag:
                task = sky.Task(run="true")
                kw = {"accelerators": {req["accelerator"]: req["count"]}, "use_spot": req["spot"]}
                if req.get("cloud"):
                    kw["infra"] = req["cloud"]
                if req.get("memory"):
                    kw["memory"] = f"{req['memory']}+"
                task.set_resources(sky.Resources(**kw))
            sky.Optimizer.optimize(dag, minimize=sky.OptimizeTarget.COST, quiet=True)
            best = task.best_resources
            out.append(
                {
                    "cloud": str(best.cloud).lower(),
                    "instance": best.instance_type,
                    "region": best.region,
                    "zone": best.zone,
                    "hourly": best.get_cost(3600),
                    "spot": best.use_spot,
                    "seconds": time.perf_counter() - t0,
                }
            )
        except Exception as exc:  # noqa: BLE001 - reported to the test, which decides
            out.append({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
    shutil.rmtree(runtime, ignore_errors=True)
    sys.stdout.write("\nSKYREF:" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
