"""The code location: assets, checks, job, schedule, and resources picked per environment.

Environment variables (all optional; the defaults run anywhere with no credentials):

==============================  ==========================================================
``TWEET_ASSETS_LAKE_URL``       ``s3://bucket/prefix`` or a local directory (default ``lake``)
``TWEET_ASSETS_SOURCE``         ``sample`` (default), ``replay``, ``x_api`` or ``stream`` (the filtered stream's landed segments)
``TWEET_ASSETS_REPLAY_DIR``     twarc2 JSON-lines file or directory, for ``replay``
``TWEET_ASSETS_SAMPLE_POSTS``   posts per day of the ``sample`` source (default 200)
``TWEET_ASSETS_START_DATE``     first daily partition (default 2006-03-21)
``TWEET_ASSETS_GLUE_DATABASE``  adds the ``glue_table`` asset: the table registered in this Glue database
``TWEET_ASSETS_GLUE_TABLE``     its Glue table name (default ``tweets``)
``TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN``  N: backfills as runs of N days (default: one run; partitions.py)
``X_BEARER_TOKEN``              app-only bearer token: the ``x_api`` source and ``compliance_job`` (batch compliance)
``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ...   the standard AWS settings (boto3)
==============================  ==========================================================

As in Dagster's ``project_fully_featured``, the resources differ per environment while the assets
do not: :func:`resources_from_env` is the one place that reads these variables.
"""

from __future__ import annotations

import os
import re
import warnings

from pathlib import Path

from dagster import (
    AnchorBasedFilePathMapping,
    BetaWarning,
    Definitions,
    EnvVar,
    link_code_references_to_git,
    load_asset_checks_from_modules,
    load_assets_from_modules,
    with_source_code_references,
)
from dagster_aws.s3 import S3Resource

from . import assets, catalog, checks
from .compliance import ComplianceApi
from .compliance_assets import COMPLIANCE_ASSETS, COMPLIANCE_CHECKS, COMPLIANCE_JOBS, COMPLIANCE_SCHEDULES
from .freshness import FRESHNESS_CHECKS, FRESHNESS_SENSORS
from .io_manager import LakeIOManager, LakeResource
from .replay_sensor import replay_archive_sensor
from .run_retention import run_retention_job, run_retention_schedule
from .schedules import tweets_daily_job, tweets_daily_schedule
from .stream_days import STREAM_ASSETS, STREAM_CHECKS, STREAM_JOBS, STREAM_SCHEDULES, STREAM_SENSORS
from .sources import ReplaySource, SampleSource
from .warehouses.glue import GlueCatalogResource

SOURCES = ("sample", "replay", "x_api", "stream")


class ConfigurationError(ValueError):
    """A setting is missing or wrong; the message names the variable and what to set."""


def source_from_env(env: dict | None = None):
    """The ``source`` resource chosen by ``TWEET_ASSETS_SOURCE``.

    Raises:
        ConfigurationError: unknown source name, or a setting the source needs is missing.
    """
    env = os.environ if env is None else env
    name = env.get("TWEET_ASSETS_SOURCE", "sample").strip().lower() or "sample"
    if name == "sample":
        posts = env.get("TWEET_ASSETS_SAMPLE_POSTS", "200").strip()
        if not re.fullmatch(r"[0-9]+", posts):  # ASCII digits only: "²".isdigit() is true, int("²") fails
            raise ConfigurationError(f"TWEET_ASSETS_SAMPLE_POSTS={posts!r}: set it to a whole number of posts per day.")
        return SampleSource(posts_per_day=int(posts))
    if name == "replay":
        path = env.get("TWEET_ASSETS_REPLAY_DIR", "").strip()
        if not path:
            raise ConfigurationError("TWEET_ASSETS_SOURCE=replay needs TWEET_ASSETS_REPLAY_DIR: a twarc2 JSON-lines file or directory.")
        return ReplaySource(path=path)
    if name == "x_api":
        from .sources.x_api import XApiSource

        return XApiSource.from_env(env)
    if name == "stream":
        from .sources.stream import StreamSource

        return StreamSource(location=lake_from_env(env))
    raise ConfigurationError(f"TWEET_ASSETS_SOURCE={name!r} is not a source: use one of {', '.join(SOURCES)}.")


def lake_from_env(env: dict | None = None) -> LakeResource:
    """The lake location from ``TWEET_ASSETS_LAKE_URL`` and the standard AWS variables."""
    env = os.environ if env is None else env
    url = env.get("TWEET_ASSETS_LAKE_URL", "").strip() or "lake"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    return LakeResource(url=url, s3=S3Resource(region_name=region, endpoint_url=endpoint))


def glue_from_env(env: dict | None = None) -> GlueCatalogResource | None:
    """The ``glue`` resource when ``TWEET_ASSETS_GLUE_DATABASE`` is set, else None (no Glue asset)."""
    env = os.environ if env is None else env
    database = env.get("TWEET_ASSETS_GLUE_DATABASE", "").strip()
    if not database:
        return None
    return GlueCatalogResource(
        database=database,
        table=env.get("TWEET_ASSETS_GLUE_TABLE", "").strip() or "tweets",
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        endpoint_url=env.get("AWS_ENDPOINT_URL_GLUE") or env.get("AWS_ENDPOINT_URL") or None,
    )


def compliance_api_from_env(env: dict | None = None) -> ComplianceApi:
    """The batch compliance endpoints' resource: ``X_BEARER_TOKEN`` (app-only). A missing token
    fails the compliance run with a message naming the variable, not the code location."""
    env = os.environ if env is None else env
    # an EnvVar: Dagit shows the variable's name in the resource's config, never the token
    return ComplianceApi(bearer_token=EnvVar("X_BEARER_TOKEN") if env.get("X_BEARER_TOKEN") else None)


def resources_from_env(env: dict | None = None) -> dict:
    """``{"source", "lake", "io_manager", "compliance_api"}`` for this environment, and ``glue``
    when ``TWEET_ASSETS_GLUE_DATABASE`` is set."""
    lake = lake_from_env(env)
    resources = {"source": source_from_env(env), "lake": lake, "io_manager": LakeIOManager(location=lake), "compliance_api": compliance_api_from_env(env)}
    glue = glue_from_env(env)
    if glue is not None:
        resources["glue"] = glue
    return resources


def _assets_with_code_references():
    """The assets, each linked to its source file and line (Dagit's "Code references")."""
    with warnings.catch_warnings():  # code references are "beta" in Dagster 1.13
        warnings.simplefilter("ignore", BetaWarning)
        modules = [assets, catalog] if glue_from_env() is not None else [assets]
        linked = with_source_code_references(load_assets_from_modules(modules))
    repo_url = os.environ.get("TWEET_ASSETS_GIT_URL")  # e.g. https://github.com/org/tweet_assets
    if not repo_url:
        return linked
    return link_code_references_to_git(
        linked,
        git_url=repo_url,
        git_branch=os.environ.get("TWEET_ASSETS_GIT_BRANCH", "main"),
        file_path_mapping=AnchorBasedFilePathMapping(local_file_anchor=Path(__file__).parent.parent, file_anchor_path_in_repository=""),
    )


defs = Definitions(
    assets=[*_assets_with_code_references(), *STREAM_ASSETS, *COMPLIANCE_ASSETS],
    asset_checks=[*load_asset_checks_from_modules([checks]), *FRESHNESS_CHECKS, *STREAM_CHECKS, *COMPLIANCE_CHECKS],
    jobs=[tweets_daily_job, run_retention_job, *STREAM_JOBS, *COMPLIANCE_JOBS],
    schedules=[tweets_daily_schedule, run_retention_schedule, *STREAM_SCHEDULES, *COMPLIANCE_SCHEDULES],
    sensors=[*FRESHNESS_SENSORS, *STREAM_SENSORS, replay_archive_sensor],
    resources=resources_from_env(),
)
