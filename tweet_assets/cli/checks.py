"""What the commands check before any run: the settings (one line each, :class:`SettingError`) and
the days they were given (``YYYY-MM-DD``, in order, inside the daily partitions)."""

from __future__ import annotations

import argparse
import os
import re
from datetime import datetime, timedelta, timezone

import tweet_assets.partitions as partitions  # the module: daily_partitions is built on first use, after the source is set
from tweet_assets import config
from tweet_assets.config import SettingError  # the one error of a wrong setting, importable here too
from tweet_assets.partitions import DAY_FORMAT, START_DATE_ENV, start_date


def default_range(days: int = 3) -> tuple[str, str]:
    """The last ``days`` complete UTC days, ``(first, last)`` as ``YYYY-MM-DD``."""
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    return (yesterday - timedelta(days=days - 1)).strftime(DAY_FORMAT), yesterday.strftime(DAY_FORMAT)


def check_lake_url(url: str) -> str:
    """``url`` if it is ``s3://bucket[/prefix]`` or a plain directory path; a value that looks like a
    URL with another or a malformed scheme (``s3:/x``, ``gs://x``, ``file:x``) is refused rather than
    taken as a directory name inside the checkout.

    Raises:
        SettingError: naming ``TWEET_ASSETS_LAKE_URL`` and the accepted forms.
    """
    if url.startswith("s3://"):
        if not url[5:].split("/", 1)[0]:
            raise SettingError(f"TWEET_ASSETS_LAKE_URL={url!r} has no bucket: use s3://BUCKET/prefix")
        return url
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url):
        raise SettingError(f"TWEET_ASSETS_LAKE_URL={url!r} is not s3://BUCKET/prefix nor a directory: fix the scheme (s3://) or give a local path")
    return url


def check_settings(command: str) -> None:
    """Everything a run reads from the environment, checked before it starts: the numeric settings
    (:mod:`tweet_assets.config`), the start date, the source (name, post count, replay directory, X
    settings), the lake URL.

    Raises:
        SettingError: the first wrong setting, in one line.
    """
    from tweet_assets.settings import lake_from_env, source_from_env

    try:
        config.check()
        start_date()
        source = source_from_env()
    except ValueError as exc:
        raise SettingError(str(exc)) from None
    if getattr(source, "source_name", "") == "replay":
        path = os.environ.get("TWEET_ASSETS_REPLAY_DIR", "").strip()
        if not os.path.exists(os.path.expanduser(path)):
            raise SettingError(f"TWEET_ASSETS_REPLAY_DIR={path!r} does not exist: point it at a twarc2 JSON-lines file or directory")
    check_lake_url(lake_from_env().url)


def collection_job(name: str, replay_path: str | None = None):
    """``(<name>_daily_job, the TweetCollection)`` (tweet_assets.components.lookup); LookupError names the collections there are."""
    from tweet_assets.components.lookup import collection_job as lookup

    return lookup(name, replay_path)


def check_days(command: argparse.ArgumentParser, name: str, first_option: tuple[str, str], last_option: tuple[str, str], collection: str | None = None) -> None:
    """Before any run: the days of ``(option, value)`` are ``YYYY-MM-DD``, in order, the settings
    are right (:func:`check_settings`), and the days are daily partitions (from
    ``TWEET_ASSETS_START_DATE`` or the source's first day, or a collection's ``start_date``, to the
    last complete UTC day). Each problem is one line and exit status 2 (argparse's ``error``)."""
    (start_flag, start), (end_flag, end) = first_option, last_option
    for flag, value in (first_option, last_option):
        try:
            datetime.strptime(value, DAY_FORMAT)
        except ValueError:
            command.error(f"{flag} {value!r} is not a YYYY-MM-DD day")
    if start > end:
        command.error(f"{start_flag} {start} is after {end_flag} {end}")
    try:
        check_settings(name)
    except SettingError as exc:
        command.exit(2, f"tweet-assets {name}: {exc}\n")
    if collection:  # the collection's own partitions (its defs.yaml's start_date)
        try:
            days = collection_job(collection)[0].partitions_def
        except LookupError as exc:
            command.error(str(exc))
        first, last, setting = days.start.strftime(DAY_FORMAT), days.get_last_partition_key(), f"start_date of collection {collection}"
    else:
        first, last, setting = start_date(), partitions.daily_partitions.get_last_partition_key(), START_DATE_ENV
    if start < first:
        command.error(
            f"{start_flag} {start} is before the first daily partition, {first} ({setting}): "
            f"pick a later day, or set {setting} to an earlier first day"
        )
    if last is None or end > last:
        command.error(f"{end_flag} {end} is after the last complete UTC day, {last}: a day's partition exists once the day has ended")


def day_range(parser: argparse.ArgumentParser, spec: str) -> list[str]:
    """``START...END`` (or one day) → every UTC day from START to END inclusive, ``YYYY-MM-DD``."""
    start, _, end = spec.partition("...")
    try:
        first = datetime.strptime(start, DAY_FORMAT).date()
        last = datetime.strptime(end or start, DAY_FORMAT).date()
    except ValueError:
        parser.error(f"--days {spec!r}: use START...END with YYYY-MM-DD days")
    if first > last:
        parser.error(f"--days {spec!r}: START is after END")
    return [(first + timedelta(days=n)).strftime(DAY_FORMAT) for n in range((last - first).days + 1)]
