"""The environment variables, read in one place, and the resources they configure.

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
do not: :func:`resources_from_env` is the one place that reads these variables
(``tweet_assets/defs/resources.py`` hands them to the code location).
"""

from __future__ import annotations

import os

from dagster import EnvVar
from dagster_aws.s3 import S3Resource

from tweet_assets.compliance.api import ComplianceApi
from tweet_assets.lake.io_manager import LakeIOManager, LakeResource
from tweet_assets.sources.base import ConfigurationError  # noqa: F401  (raised by source_from_env; importers catch it from here)
from tweet_assets.sources.registry import SOURCES, source_class  # noqa: F401
from tweet_assets.warehouses.glue import GlueCatalogResource


def source_from_env(env: dict | None = None):
    """The ``source`` resource chosen by ``TWEET_ASSETS_SOURCE`` (default ``sample``), configured by
    its class's ``from_env`` (:mod:`tweet_assets.sources.registry`).

    Raises:
        ConfigurationError: unknown source name, or a setting the source needs is missing.
    """
    env = os.environ if env is None else env
    name = env.get("TWEET_ASSETS_SOURCE", "sample").strip().lower() or "sample"
    return source_class(name).from_env(env, lake=lake_from_env(env) if name == "stream" else None)


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
    host = {"base_url": env["X_API_BASE_URL"].strip()} if env.get("X_API_BASE_URL", "").strip() else {}
    return ComplianceApi(bearer_token=EnvVar("X_BEARER_TOKEN") if env.get("X_BEARER_TOKEN") else None, **host)


def x_api_from_env(env: dict | None = None):
    """The ``x_api`` resource: the X API as the project's app (``X_BEARER_TOKEN``, host and
    timeouts as the source's), read by ``x_api_usage`` (the project's post cap and usage)."""
    from tweet_assets.sources.x_api import XApiSource

    return XApiSource.for_usage(os.environ if env is None else env)


def x_api_configured(env: dict | None = None) -> bool:
    """True when the environment's source is the X API and its bearer token is set (what
    ``x_api_usage_sensor`` runs by default for)."""
    env = os.environ if env is None else env
    return (env.get("TWEET_ASSETS_SOURCE") or "").strip().lower() == "x_api" and bool((env.get("X_BEARER_TOKEN") or "").strip())


def resources_from_env(env: dict | None = None) -> dict:
    """``{"source", "lake", "io_manager", "compliance_api", "x_api"}`` for this environment, and
    ``glue`` when ``TWEET_ASSETS_GLUE_DATABASE`` is set."""
    lake = lake_from_env(env)
    resources = {"source": source_from_env(env), "lake": lake, "io_manager": LakeIOManager(location=lake), "compliance_api": compliance_api_from_env(env),
                 "x_api": x_api_from_env(env)}
    glue = glue_from_env(env)
    if glue is not None:
        resources["glue"] = glue
    return resources
