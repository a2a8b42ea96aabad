#!/usr/bin/env bash
# Fill the placeholders of the IAM policies in this folder and write the results to OUTDIR.
#
#   LAKE_BUCKET=my-bucket LAKE_PREFIX=tweet_assets REGION=eu-west-1 ACCOUNT_ID=123456789012 \
#   KMS_KEY_ID=1234abcd-12ab-34cd-56ef-1234567890ab \
#   ATHENA_WORKGROUP=primary GLUE_DATABASE=tweets_db RESULTS_BUCKET=my-athena-results RESULTS_PREFIX=tweet_assets \
#     deploy/iam/render-policies.sh out/
#
# LAKE_PREFIX is the path part of TWEET_ASSETS_LAKE_URL (s3://LAKE_BUCKET/LAKE_PREFIX); leave it
# empty for a lake at the bucket's root. KMS_KEY_ID is the key that encrypts the SSM parameter
# (the key id, not an alias). SSM_PARAMETER (default /tweet_assets/x_bearer_token) is the X token
# parameter's name, PG_PASSWORD_PARAMETER (default /tweet_assets/dagster_pg_password) the Dagster
# database password's (both SecureStrings under that key). COMPUTE_LOG_BUCKET (default LAKE_BUCKET)
# holds the Dagster compute logs under tweet_assets/dagster/compute_logs/.
#
# Written always: policy.json (the instance role's pipeline policy), trust-policy.json and
# session-manager-policy.json (optional: SSM Session Manager's own actions, instead of the managed
# AmazonSSMManagedInstanceCore, which also allows ssm:GetParameter on every parameter).
# lake-kms-policy.json only when LAKE_KMS_KEY_ID is set (a lake bucket encrypted with SSE-KMS under
# that key id); athena-reader-policy.json only when ATHENA_WORKGROUP is set (with GLUE_DATABASE,
# RESULTS_BUCKET, RESULTS_PREFIX). glue-catalog-policy.json (what `tweet-assets catalog` and the
# glue_table asset need: Get/Create/UpdateTable on the one table) is rendered when GLUE_DATABASE is
# set and TABLE_FORMAT is hive (an Iceberg deployment has no glue_table asset; iceberg-policy.json
# holds its Glue calls); GLUE_TABLE defaults to tweets.
# iceberg-policy.json only when TABLE_FORMAT=iceberg (the deployment's TWEET_ASSETS_TABLE_FORMAT;
# default hive), with GLUE_DATABASE (and GLUE_TABLE): what the Iceberg table format adds to
# policy.json: s3:DeleteObject under the table's data/ and metadata/ folders only (snapshot expiry
# and the orphan sweep delete the files no live snapshot reaches, so that a deleted post leaves
# storage), and the Glue calls of pyiceberg's GlueCatalog on the one database and table.
# ecs-launcher-policy.json (what dagster-aws's EcsRunLauncher in dagster-daemon needs: RunTask of
# the project's task families in one cluster, RegisterTaskDefinition of the families it derives
# from its task_definition_prefix, Describe/StopTask there, PassRole of the two task roles to ECS,
# the run logs) only when ECS_CLUSTER is set, with ECS_TASK_ROLE and ECS_EXECUTION_ROLE (role
# names), ECS_TASK_FAMILY (the stack's task definition, default tweet-assets-run),
# ECS_TASK_DEFINITION_PREFIX (deploy/ecs/dagster.yaml's task_definition_prefix, default
# tweet-assets) and LOG_GROUP (default /tweet_assets).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: render-policies.sh OUTDIR}"
ssm_parameter="${SSM_PARAMETER:-/tweet_assets/x_bearer_token}"
pg_password_parameter="${PG_PASSWORD_PARAMETER:-/tweet_assets/dagster_pg_password}"
compute_log_bucket="${COMPUTE_LOG_BUCKET:-${LAKE_BUCKET:-}}"

need() {
  local name="$1"
  if [[ -z "${!name:-}" ]]; then
    echo "render-policies.sh: set $name" >&2
    exit 2
  fi
}

for name in LAKE_BUCKET REGION ACCOUNT_ID KMS_KEY_ID; do need "$name"; done
table_format="${TABLE_FORMAT:-hive}"
case "$table_format" in
  hive) ;;
  iceberg)
    if [[ -z "${GLUE_DATABASE:-}" ]]; then
      echo "render-policies.sh: TABLE_FORMAT=iceberg needs GLUE_DATABASE (the Glue database of the Iceberg table, TWEET_ASSETS_GLUE_DATABASE)" >&2
      exit 2
    fi
    ;;
  *)
    echo "render-policies.sh: TABLE_FORMAT must be hive or iceberg (TWEET_ASSETS_TABLE_FORMAT), got '$table_format'" >&2
    exit 2
    ;;
esac
for name in ssm_parameter pg_password_parameter; do
  if [[ ! "${!name}" =~ ^/[A-Za-z0-9_./-]+$ ]]; then
    echo "render-policies.sh: ${name^^} must be a full name starting with /, got '${!name}'" >&2
    exit 2
  fi
done

prefix="${LAKE_PREFIX:-}"
prefix="${prefix#/}"
prefix="${prefix%/}"

# sed replacement text: escape \, & and the | delimiter.
esc() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

render() {
  local src="$1" dst="$2"
  local -a expr=(
    -e "s|parameter/tweet_assets/x_bearer_token|parameter$(esc "$ssm_parameter")|g"
    -e "s|parameter/tweet_assets/dagster_pg_password|parameter$(esc "$pg_password_parameter")|g"
    -e "s|COMPUTE_LOG_BUCKET|$(esc "$compute_log_bucket")|g"
    -e "s|LAKE_KMS_KEY_ID|$(esc "${LAKE_KMS_KEY_ID:-}")|g"
    -e "s|ECS_CLUSTER|$(esc "${ECS_CLUSTER:-}")|g"
    -e "s|ECS_TASK_FAMILY|$(esc "${ECS_TASK_FAMILY:-tweet-assets-run}")|g"
    -e "s|ECS_TASK_DEFINITION_PREFIX|$(esc "${ECS_TASK_DEFINITION_PREFIX:-tweet-assets}")|g"
    -e "s|ECS_TASK_ROLE|$(esc "${ECS_TASK_ROLE:-}")|g"
    -e "s|ECS_EXECUTION_ROLE|$(esc "${ECS_EXECUTION_ROLE:-}")|g"
    -e "s|LOG_GROUP|$(esc "${LOG_GROUP:-/tweet_assets}")|g"
    -e "s|LAKE_BUCKET|$(esc "$LAKE_BUCKET")|g"
    -e "s|ACCOUNT_ID|$(esc "$ACCOUNT_ID")|g"
    -e "s|KMS_KEY_ID|$(esc "$KMS_KEY_ID")|g"
    -e "s|REGION|$(esc "$REGION")|g"
  )
  if [[ -n "$prefix" ]]; then
    expr+=(-e "s|LAKE_PREFIX|$(esc "$prefix")|g")
  else
    expr+=(-e "s|LAKE_PREFIX/||g")
  fi
  if [[ -n "${GLUE_DATABASE:-}" ]]; then
    expr+=(
      -e "s|GLUE_DATABASE|$(esc "$GLUE_DATABASE")|g"
      -e "s|GLUE_TABLE|$(esc "${GLUE_TABLE:-tweets}")|g"
    )
  fi
  if [[ -n "${ATHENA_WORKGROUP:-}" ]]; then
    local results="${RESULTS_PREFIX:-}"
    results="${results#/}"
    results="${results%/}"
    expr+=(
      -e "s|ATHENA_WORKGROUP|$(esc "$ATHENA_WORKGROUP")|g"
      -e "s|GLUE_DATABASE|$(esc "${GLUE_DATABASE:?set GLUE_DATABASE}")|g"
      -e "s|RESULTS_BUCKET|$(esc "${RESULTS_BUCKET:?set RESULTS_BUCKET}")|g"
    )
    if [[ -n "$results" ]]; then
      expr+=(-e "s|RESULTS_PREFIX|$(esc "$results")|g")
    else
      expr+=(-e 's|"RESULTS_PREFIX",|"",|g' -e "s|RESULTS_PREFIX/||g")
    fi
  fi
  sed "${expr[@]}" "$src" > "$dst"
  if grep -Eq 'LAKE_BUCKET|LAKE_PREFIX|LAKE_KMS_KEY_ID|COMPUTE_LOG_BUCKET|ECS_[A-Z_]+|LOG_GROUP|ACCOUNT_ID|KMS_KEY_ID|REGION|ATHENA_WORKGROUP|GLUE_DATABASE|GLUE_TABLE|RESULTS_BUCKET|RESULTS_PREFIX' "$dst"; then
    echo "render-policies.sh: placeholders left in $dst" >&2
    exit 3
  fi
}

mkdir -p "$out"
render "$here/policy.json" "$out/policy.json"
cp "$here/trust-policy.json" "$out/trust-policy.json"
render "$here/session-manager-policy.json" "$out/session-manager-policy.json"
if [[ -n "${LAKE_KMS_KEY_ID:-}" ]]; then
  render "$here/lake-kms-policy.json" "$out/lake-kms-policy.json"
fi
if [[ -n "${ECS_CLUSTER:-}" ]]; then
  render "$here/ecs-launcher-policy.json" "$out/ecs-launcher-policy.json"
fi
if [[ -n "${ATHENA_WORKGROUP:-}" ]]; then
  render "$here/athena-reader-policy.json" "$out/athena-reader-policy.json"
fi
if [[ -n "${GLUE_DATABASE:-}" ]]; then
  if [[ ! "${GLUE_TABLE:-tweets}" =~ ^[a-z0-9_]+$ || ! "$GLUE_DATABASE" =~ ^[a-z0-9_]+$ ]]; then
    echo "render-policies.sh: GLUE_DATABASE and GLUE_TABLE must be lowercase Glue names ([a-z0-9_]), got '$GLUE_DATABASE' '${GLUE_TABLE:-tweets}'" >&2
    exit 2
  fi
  if [[ "$table_format" == iceberg ]]; then
    render "$here/iceberg-policy.json" "$out/iceberg-policy.json"
  else  # the Hive table's glue_table/glue_partitions assets and `tweet-assets catalog`: no Iceberg deployment has them
    render "$here/glue-catalog-policy.json" "$out/glue-catalog-policy.json"
  fi
fi
echo "wrote the policies to $out" >&2
