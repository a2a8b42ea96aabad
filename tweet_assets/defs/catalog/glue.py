"""``glue_table`` and ``glue_partitions``: the published table in the AWS Glue Data Catalog, optional assets.

They are part of the code location when ``TWEET_ASSETS_GLUE_DATABASE`` is set (:func:`catalog`).
Its ``code_version`` is a hash of ``schema.py``'s columns, so Dagster marks it changed when a column
is added; its automation condition materializes it once when missing and again on each such change
(Dagster docs, "Declarative Automation": ``code_version_changed``; the default automation condition
sensor must be running). Each materialization upserts the table (:mod:`.warehouses.glue`): created,
updated with the columns added/removed/retyped, or unchanged.

``glue_partitions`` stores each published day as a catalog partition, for the engines that do not
read Athena's partition projection (Redshift Spectrum, EMR, Glue jobs); it is daily-partitioned like
``s3_parquet`` and materializes eagerly after it (the latest day; backfill older days by selecting
it with the same range).
"""

from dagster import AssetExecutionContext, AutomationCondition, Definitions, MaterializeResult, MetadataValue, asset, definitions

from tweet_assets.defs.pipeline.assets import PUBLISHED_TABLE, SINGLE_RUN, s3_parquet
from tweet_assets.lake.io_manager import LakeResource
from tweet_assets.partitions import daily_partitions, projection_start_date
from tweet_assets.warehouses import schema_version
from tweet_assets.settings import glue_from_env
from tweet_assets.tables import table_format
from tweet_assets.warehouses.glue import GlueCatalogResource


@asset(
    group_name="warehouses",
    kinds={"glue"},
    code_version=schema_version(),
    automation_condition=(AutomationCondition.missing().newly_true() | AutomationCondition.code_version_changed())
    & ~AutomationCondition.in_progress(),
    description="The published table in the Glue Data Catalog (columns from schema.py, Parquet SerDe, partition projection); upserted when the schema changes.",
)
def glue_table(context: AssetExecutionContext, lake: LakeResource, glue: GlueCatalogResource) -> MaterializeResult:
    """Upsert the Glue table over the lake's published prefix (``s3://…/tweets/``).

    Raises:
        CatalogError: the lake is not on S3, the database is missing, or Glue refused a call.
    """
    location = lake.lake().uri(PUBLISHED_TABLE).rstrip("/") + "/"
    result = glue.upsert_table(location, first_day=projection_start_date())
    context.log.info(f"Glue table {result.database}.{result.table}: {result.action} (added {list(result.added)}, removed {list(result.removed)})")
    return MaterializeResult(
        metadata={
            "glue/database": result.database,
            "glue/table": result.table,
            "action": result.action,
            "columns_added": MetadataValue.json(list(result.added)),
            "columns_removed": MetadataValue.json(list(result.removed)),
            "columns_retyped": MetadataValue.json(list(result.retyped)),
            "other_changes": MetadataValue.json(list(result.other_changes)),
            "table_location": location,
            "schema_version": schema_version(),
        }
    )


@asset(
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    deps=[s3_parquet, glue_table],
    group_name="warehouses",
    kinds={"glue"},
    automation_condition=AutomationCondition.eager(),
    description="Each published day stored as a partition of the Glue table, for Redshift Spectrum and other engines that do not read Athena's partition projection.",
)
def glue_partitions(context: AssetExecutionContext, lake: LakeResource, glue: GlueCatalogResource) -> MaterializeResult:
    """Register the run's days (``YYYY-MM-DD``, UTC) as partitions of the Glue table; a day already
    registered is left as it is.

    Raises:
        CatalogError: the table does not exist (materialize ``glue_table`` first) or Glue refused a call.
    """
    location = lake.lake().uri(PUBLISHED_TABLE).rstrip("/") + "/"
    days = list(context.partition_keys)
    created, existing = glue.register_partitions(location, days)
    context.log.info(f"Glue table {glue.database}.{glue.table}: {created} partition(s) created, {existing} already there")
    return MaterializeResult(metadata={"partitions_created": created, "partitions_already_there": existing, "glue/table": f"{glue.database}.{glue.table}"})


@definitions
def catalog() -> Definitions:
    """``glue_table`` and ``glue_partitions`` when ``TWEET_ASSETS_GLUE_DATABASE`` is set, else nothing;
    nothing either when the published table is Iceberg (``TWEET_ASSETS_TABLE_FORMAT=iceberg``): its
    Glue catalog registers it at each commit, under the same name (tweet_assets.tables.catalogs)."""
    return Definitions(assets=[glue_table, glue_partitions]) if glue_from_env() is not None and table_format() == "hive" else Definitions()
