"""The resources of this environment (``source``, ``lake``, ``io_manager``, ``compliance_api``,
``glue`` when configured), read from the environment by :func:`tweet_assets.settings.resources_from_env`."""

from dagster import Definitions, definitions

from tweet_assets.settings import resources_from_env


@definitions
def resources() -> Definitions:
    """Every asset, check, sensor and job of the code location binds these by name."""
    return Definitions(resources=resources_from_env())
