#!/usr/bin/env bash
# Write deploy/ecs/dagster.yaml to OUT with its two networking placeholders filled:
#
#   TWEET_ASSETS_ECS_SUBNETS=subnet-0abc,subnet-0def TWEET_ASSETS_ECS_SECURITY_GROUPS=sg-0123 \
#     deploy/ecs/render-dagster-yaml.sh /var/lib/dagster/dagster.yaml
#
# Both are comma-separated ids (subnet-..., sg-...): private subnets with a route to S3, SSM, ECR,
# CloudWatch Logs, RDS and the X API (a NAT gateway or VPC endpoints); security groups that allow
# outbound HTTPS and PostgreSQL to the database. Everything else in the file is read from the
# environment when Dagster loads it. Refuses a missing or malformed id list.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: render-dagster-yaml.sh OUT}"

check_ids() {
  local name="$1" prefix="$2" value="${!1:-}"
  if [[ ! "$value" =~ ^${prefix}-[0-9a-f]+(,${prefix}-[0-9a-f]+)*$ ]]; then
    echo "render-dagster-yaml.sh: set $name to comma-separated ${prefix}-... ids (got '${value}')" >&2
    exit 2
  fi
}
check_ids TWEET_ASSETS_ECS_SUBNETS subnet
check_ids TWEET_ASSETS_ECS_SECURITY_GROUPS sg

tmp="$(mktemp "${out}.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
sed -e "s/\[TWEET_ASSETS_ECS_SUBNETS\]/[${TWEET_ASSETS_ECS_SUBNETS//,/, }]/" \
    -e "s/\[TWEET_ASSETS_ECS_SECURITY_GROUPS\]/[${TWEET_ASSETS_ECS_SECURITY_GROUPS//,/, }]/" \
    "$here/dagster.yaml" >"$tmp"
if grep -q '\[TWEET_ASSETS_ECS_' "$tmp"; then
  echo "render-dagster-yaml.sh: a placeholder was left in $out" >&2
  exit 2
fi
chmod 0644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
