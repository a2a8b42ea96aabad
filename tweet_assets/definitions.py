"""The code location: every object under ``tweet_assets/defs/``, linked to its source code.

``dg`` and ``dagster`` load this module (``[tool.dg]`` and ``[tool.dagster]`` in pyproject.toml,
``workspace.yaml``). The objects themselves live by concern under ``defs/`` (the daily pipeline,
replay, stream, compliance, catalog, run retention, resources), each file contributing its own:
adding one is adding a file (Dagster docs, "Creating a new Dagster project": ``dg`` projects and
``load_from_defs_folder``). The environment variables are read in :mod:`tweet_assets.settings`.

Cross-cutting here: Dagit's "Code references" on every asset (their source file and line, or the
file on GitHub/GitLab when ``TWEET_ASSETS_GIT_URL`` is set, e.g. ``https://github.com/org/tweet_assets``,
with ``TWEET_ASSETS_GIT_BRANCH``, default ``main``).
"""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path

from dagster import (
    AnchorBasedFilePathMapping,
    AssetsDefinition,
    BetaWarning,
    ComponentTree,
    Definitions,
    link_code_references_to_git,
    load_from_defs_folder,
    with_source_code_references,
)

from tweet_assets import config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _with_code_references(loaded: Definitions) -> Definitions:
    """``loaded`` with each asset linked to its source file and line (Dagit's "Code references")."""
    assets = list(loaded.assets or [])
    with warnings.catch_warnings():  # code references are "beta" in Dagster 1.13
        warnings.simplefilter("ignore", BetaWarning)
        linked = with_source_code_references([a for a in assets if isinstance(a, AssetsDefinition)])
    repo_url = os.environ.get("TWEET_ASSETS_GIT_URL")
    if repo_url:
        linked = link_code_references_to_git(
            linked,
            git_url=repo_url,
            git_branch=os.environ.get("TWEET_ASSETS_GIT_BRANCH", "main"),
            file_path_mapping=AnchorBasedFilePathMapping(local_file_anchor=PROJECT_ROOT, file_anchor_path_in_repository=""),
        )
    others = [a for a in assets if not isinstance(a, AssetsDefinition)]
    return Definitions(
        assets=[*linked, *others],
        asset_checks=loaded.asset_checks,
        jobs=loaded.jobs,
        schedules=loaded.schedules,
        sensors=loaded.sensors,
        resources=loaded.resources,
        executor=loaded.executor,
        loggers=loaded.loggers,
        metadata=loaded.metadata,
    )


def _load_defs_folder() -> Definitions:
    """Every object under ``tweet_assets/defs/``. In a checkout (``dg``, ``make``, the tests) through
    ``load_from_defs_folder``, which reads ``[tool.dg]`` of pyproject.toml; in an installed package
    (the container image, the EC2 venv: no pyproject.toml beside it, where ``load_from_defs_folder``
    raises "Could not find config file") from the ``defs`` module itself, the same tree."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return load_from_defs_folder(path_within_project=PROJECT_ROOT)
    defs_module = importlib.import_module("tweet_assets.defs")
    return ComponentTree.from_module(defs_module=defs_module, project_root=Path(__file__).resolve().parent).build_defs()


# a wrong numeric setting (TWEET_ASSETS_LEASE_TTL_S=0, nan, ...) fails the code location's load in one
# line naming it (Dagit shows it on the code location), before any run can start (tweet_assets.config)
config.check()
defs = _with_code_references(_load_defs_folder())
