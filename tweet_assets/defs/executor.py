"""The code location's default executor: every step of a run in the run's own process.

``in_process_executor`` for every job of the code location, ``tweets_daily_job`` and the implicit
asset job Dagit uses for "Materialize" and for backfills alike. Dagster's default
(``multiprocess_executor``) starts one Python process per step, each importing Dagster, polars,
pyarrow and this code location again (seconds per step on a small machine) and handing values over
through the IO manager anyway: on a 5-day backfill of the three assets and their checks that cost
a UI-launched run ~13x the CLI's in-process run (issue #29; ``bench/ui_backfill.py`` measures it).
The steps of one run are a chain (``raw_tweets → clean_tweets → s3_parquet``) with checks in
between, so running them one after another loses nothing; runs still run in parallel (the run
queue, ``max_concurrent_runs``) and the heavy work inside a step already uses threads
(``transform.day_workers``). Rule: Dagster docs, "Executors" (``Definitions(executor=...)`` is the
default of every job that does not set its own).
"""

from dagster import Definitions, definitions, in_process_executor


@definitions
def executor() -> Definitions:
    """``Definitions(executor=in_process_executor)``: the default executor of the code location."""
    return Definitions(executor=in_process_executor)
