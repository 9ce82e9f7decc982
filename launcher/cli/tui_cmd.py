"""``spotrain tui``: the terminal dashboard (see ``spotrain/tui``)."""

from __future__ import annotations

import click


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between reads of the job store.",
)
def tui(job_id: int | None, refresh: float) -> None:
    """Jobs, spend and loss curves in one screen (q quits; x plots loss against $; c / p cancel / preempt)."""
    from spotrain.jobs import service
    from spotrain.tui.app import SpotrainApp

    store = service.open_store()
    service.ensure_controllers(store)
    if job_id is not None:
        store.job(job_id)  # a one-line error for an unknown id, before the screen takes over
    SpotrainApp(store, refresh=refresh, job_id=job_id).run()
