"""What the commands print besides their results: text tables, an error's first lines, the runs'
warnings once (never Dagster's whole event log unless ``--verbose``)."""

from __future__ import annotations

import logging
import sys


def table(description, rows) -> str:
    """A text table of a DB-API cursor's ``description`` (column names first) and ``rows``."""
    headers = [d[0] for d in description]
    cells = [[str(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda values: " | ".join(v.ljust(w) for v, w in zip(values, widths))  # noqa: E731
    return "\n".join([line(headers), "-+-".join("-" * w for w in widths), *(line(r) for r in cells)])


def first_lines(text: str, lines: int = 6) -> str:
    """The first ``lines`` non-blank lines of ``text`` (an error's message without its traceback)."""
    kept = [line for line in text.strip().splitlines() if line.strip()][:lines]
    return "\n".join(kept)


def run_warnings(instance, run_ids: list[str], limit: int = 20) -> list[str]:
    """The WARNING-or-worse messages of the runs' event logs, each once, in first-seen order."""
    seen: dict[str, None] = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id):
            if entry.level >= logging.WARNING and entry.user_message:
                seen.setdefault(entry.user_message.strip().splitlines()[0][:300], None)
    return list(seen)[:limit]


def print_warnings(instance, run_ids: list[str]) -> None:
    """Each warning of the runs once, on stderr (``warning: ...``)."""
    for line in run_warnings(instance, run_ids):
        print(f"warning: {line}", file=sys.stderr)


def run_failures(result) -> list[str]:
    """``step: first line of its error`` for each failed step of a run (a check that failed is in
    its asset check evaluation, not here)."""
    failures = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.event_specific_data and event.event_specific_data.error:
            error = event.event_specific_data.error
            while error.cause is not None:  # Dagster's wrapper ("Error occurred while loading input ...") → the cause
                error = error.cause
            failures.append(f"{event.step_key}: {first_lines(error.message.strip(), 1)}")
    return failures
