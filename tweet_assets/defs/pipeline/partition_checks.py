"""One asset check evaluation per partition of a run, so Dagit shows each day's check result.

Why (Dagster 1.13.27, read from its source): a check declared with ``partitions_def=`` gets one
*planned* execution row per partition of the run (``ASSET_CHECK_EVALUATION_PLANNED`` carries the
run's partitions subset; ``SqlEventLogStorage._store_asset_check_evaluation_planned`` writes a row per
key). An ``AssetCheckResult`` returned from a range run (a single-run backfill, ``tweet-assets demo``)
becomes one ``AssetCheckEvaluation`` with ``partition=None`` (``AssetCheckResult.to_asset_check_evaluation``
sets the partition only when the step has a single ``partition_key``), which matches none of those
rows: every day stayed "planned", shown as **Skipped**, and the asset graph read "0 / N Passed".
Yielding an ``AssetCheckEvaluation`` per day with ``partition=day`` (public API, accepted from an
op's compute like ``AssetCheckResult``) completes each day's row with that day's own result, and
its ``target_materialization_data`` points at the day's latest materialization, which is how Dagit
tells a check "for the latest materialization" from a stale one.

A day left out of ``results`` is not evaluated: Dagit shows it Skipped (use it for a check that
cannot compare that day, and say why in the run log). A blocking check's failed ERROR evaluation
still fails the step (``execute_step`` collects failed blocking evaluations, whatever their origin),
so downstream assets of that run are not materialized.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetIn,
    AssetKey,
    AssetRecordsFilter,
    Output,
    multi_asset_check,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData


def latest_materialization(context: AssetCheckExecutionContext, asset_key: AssetKey, partition: str) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The storage id, run id and timestamp (s since the epoch) of ``asset_key``'s latest
    materialization of ``partition``, or None when it was never materialized."""
    records = context.instance.fetch_materializations(AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)


def per_partition(context: AssetCheckExecutionContext, results: Mapping[str, AssetCheckResult]) -> Iterator[Output | AssetCheckEvaluation]:
    """Yield the check's output, then ``AssetCheckEvaluation(partition=day)`` for each
    ``{day: AssetCheckResult}`` (its ``passed``, ``severity``, ``description``, ``metadata``).

    Use from an ``@asset_check(partitions_def=...)`` function written as a generator:
    ``yield from per_partition(context, {day: AssetCheckResult(...) for day in context.partition_keys})``.

    Raises:
        ValueError: a key of ``results`` is not one of the run's partitions.
    """
    (spec,) = context.check_specs
    outside = sorted(set(results) - set(context.partition_keys))
    if outside:
        raise ValueError(f"check {spec.name}: results for {outside}, outside the run's partitions")
    # the check's output (``result``, or the check's own name: :func:`own_output`): what blocking
    # checks' downstream steps wait on
    yield Output(None, output_name=next(iter(context.op_execution_context.op_def.output_dict)))
    for day in context.partition_keys:
        if day not in results:
            continue
        result = results[day]
        yield AssetCheckEvaluation(
            asset_key=spec.asset_key,
            check_name=spec.name,
            passed=result.passed,
            metadata=result.metadata,
            target_materialization_data=latest_materialization(context, spec.asset_key, day),
            severity=result.severity,
            description=result.description,
            blocking=spec.blocking,
            partition=day,
        )


def own_output(check: AssetChecksDefinition) -> AssetChecksDefinition:
    """``check`` (one ``@asset_check``) with its op's output named after the check
    (``clean_tweets__ids_unique_and_not_null``), not ``result``: the same function, op name, spec
    (blocking, partitions, description) and inputs, as a ``@multi_asset_check`` of that one spec.

    Why: Dagster 1.13.27 orders an asset's blocking checks in the downstream step's dependencies by
    output name only (``asset_job._get_blocking_asset_check_output_handles_by_asset_key``); two
    blocking checks both named ``result`` tie, and the tie falls to set order, which Python's hash
    seed changes from process to process. The job snapshot then differs between Dagit's code server
    and the command line half of the time (measured: 2 ids over 10 seeds), and Dagit warns "may be a
    different version" on a run the CLI recorded. Distinct names make the order, and the snapshot,
    the same in every process."""
    (spec,) = check.check_specs
    fn = check.node_def.compute_fn.decorated_fn  # the decorated function itself (Dagster's DecoratedOpFunction)
    ins = {name: AssetIn(key=key) for name, key in check.keys_by_input_name.items()}
    return multi_asset_check(specs=[spec], name=check.node_def.name, ins=ins)(fn)
