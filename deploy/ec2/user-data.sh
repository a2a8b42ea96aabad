#!/usr/bin/env bash
# EC2 user data for tweet_assets on Amazon Linux 2023 (dnf, python3.11) or Ubuntu 24.04 LTS (apt,
# python3 3.12): installs Python 3.11+ and the project, creates DAGSTER_HOME with the production
# dagster.yaml, and runs dagster-webserver (127.0.0.1 only) and dagster-daemon as systemd services
# under a dedicated unprivileged user. Ubuntu 22.04 is refused: its Python is 3.10, and polars 2.1
# needs 3.11 (pyarrow 26 has no 3.10 wheel).
#
# The instance needs only this script and an instance profile with deploy/iam/policy.json (see
# deploy/README.md). The X bearer token is never in this script, the unit files or on disk: each
# service reads it from SSM Parameter Store (SecureString) when it starts, with IMDSv2 only.
# Re-running the script is safe: it converges to the same files and restarts the services.
#
# Every setting below can also be given in the environment; the test suite installs into a scratch
# prefix with TWEET_ASSETS_ROOT=/tmp/x NO_SYSTEMD=1 TWEET_ASSETS_PIP_SPEC=/path/to/repo, with
# OS_RELEASE pointing at an Ubuntu 24.04 or Amazon Linux 2023 os-release file and stub package
# managers first on PATH.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# What to install: a pinned git ref (default), or a wheel, or any pip requirement.
TWEET_ASSETS_GIT_URL="${TWEET_ASSETS_GIT_URL:-https://github.com/CHANGE-ME/tweet_assets.git}"
TWEET_ASSETS_GIT_REF="${TWEET_ASSETS_GIT_REF:-v0.1.0}"        # a tag or a full commit SHA
TWEET_ASSETS_WHEEL_URL="${TWEET_ASSETS_WHEEL_URL:-}"          # https://.../tweet_assets-0.1.0-py3-none-any.whl
TWEET_ASSETS_PIP_SPEC="${TWEET_ASSETS_PIP_SPEC:-}"            # overrides both (a local path, say)
TWEET_ASSETS_PIP_ARGS="${TWEET_ASSETS_PIP_ARGS:-}"            # extra pip install arguments

# What the services run with (written to /etc/tweet_assets/tweet_assets.env; no secrets here).
TWEET_ASSETS_LAKE_URL="${TWEET_ASSETS_LAKE_URL:-s3://CHANGE-ME-BUCKET/tweet_assets}"
TWEET_ASSETS_SOURCE="${TWEET_ASSETS_SOURCE:-x_api}"           # x_api | replay | sample
X_QUERY="${X_QUERY:-}"                                        # the X API search query (x_api source)
X_ACCOUNTS="${X_ACCOUNTS:-}"                                  # or: user timelines, a,b,c (no X_QUERY)
X_FULL_ARCHIVE="${X_FULL_ARCHIVE:-}"                          # 1: full-archive search (Pro tier)
X_BEARER_TOKEN_PARAMETER="${X_BEARER_TOKEN_PARAMETER-/tweet_assets/x_bearer_token}"  # SSM name; "" = none
TWEET_ASSETS_START_DATE="${TWEET_ASSETS_START_DATE:-}"
AWS_REGION="${AWS_REGION:-}"                                  # empty: read from IMDSv2 at service start
DAGSTER_WEBSERVER_PORT="${DAGSTER_WEBSERVER_PORT:-3000}"      # always bound to 127.0.0.1
X_API_POOL_LIMIT="${X_API_POOL_LIMIT:-1}"                     # concurrent raw_tweets steps (X API)
# Dagster's storage on PostgreSQL (RDS) and compute logs in S3 (deploy/dagster.yaml reads these);
# the password is never here: the launcher reads it from the SSM SecureString named below.
DAGSTER_PG_HOST="${DAGSTER_PG_HOST:-}"                        # the RDS endpoint address
DAGSTER_PG_PORT="${DAGSTER_PG_PORT:-5432}"
DAGSTER_PG_DB="${DAGSTER_PG_DB:-dagster}"
DAGSTER_PG_USERNAME="${DAGSTER_PG_USERNAME:-dagster}"
DAGSTER_PG_PASSWORD_PARAMETER="${DAGSTER_PG_PASSWORD_PARAMETER-/tweet_assets/dagster_pg_password}"  # SSM name; "" = none
# Compute logs are purged by the bucket's lifecycle rule on tweet_assets/dagster/compute_logs/
# (deploy/cloudformation/tweet-assets.yaml, "compute-logs-expire"); the local copies are deleted by
# S3ComputeLogManager after each upload, and the services' private /tmp is cleared on restart.
TWEET_ASSETS_COMPUTE_LOG_BUCKET="${TWEET_ASSETS_COMPUTE_LOG_BUCKET:-}"  # default: the lake's bucket
# --- filtered stream (issue #19; owner: stream) ------------------------------------------------
# TWEET_ASSETS_STREAM=1 enables and starts tweet-assets-stream.service (the unit is always written).
# Its rules (JSON [{"value", "tag"}]) go to a file of their own, not to the env file.
TWEET_ASSETS_STREAM="${TWEET_ASSETS_STREAM:-0}"
TWEET_ASSETS_STREAM_RULES="${TWEET_ASSETS_STREAM_RULES:-}"
# --- end filtered stream settings ---------------------------------------------------------------
# --- the published table's format (issue #37) ----------------------------------------------------
# hive: today's dt= Parquet files. iceberg: an Apache Iceberg table registered in the Glue Data
# Catalog, in the database TWEET_ASSETS_GLUE_DATABASE (needed; the role also needs
# deploy/iam/iceberg-policy.json rendered with TABLE_FORMAT=iceberg and that GLUE_DATABASE). The
# env file then configures pyiceberg's catalog "glue" (PYICEBERG_CATALOG__GLUE__TYPE=glue) and
# names it (TWEET_ASSETS_ICEBERG_CATALOG=glue). With hive, TWEET_ASSETS_GLUE_DATABASE adds the
# optional glue_table assets (deploy/iam/glue-catalog-policy.json).
TWEET_ASSETS_TABLE_FORMAT="${TWEET_ASSETS_TABLE_FORMAT:-hive}"
TWEET_ASSETS_GLUE_DATABASE="${TWEET_ASSETS_GLUE_DATABASE:-}"
# --- end table format settings -------------------------------------------------------------------
# The ECS fan-out shape (deploy/ecs/dagster.yaml reads these from dagster-daemon's environment; the
# CloudFormation stack's outputs give them): written to the env file when set.
ECS_SETTINGS=(TWEET_ASSETS_ECS_CLUSTER TWEET_ASSETS_ECS_EXECUTION_ROLE_ARN TWEET_ASSETS_ECS_TASK_ROLE_ARN
  TWEET_ASSETS_ECS_LOG_GROUP TWEET_ASSETS_ECS_X_TOKEN_PARAMETER_ARN TWEET_ASSETS_ECS_PG_PASSWORD_PARAMETER_ARN
  DAGSTER_CURRENT_IMAGE TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN)

# Where: "" on the instance; a scratch directory in tests. NO_SYSTEMD=1 writes the units but does
# not create the user or touch systemctl; SKIP_PACKAGES=1 (or the older SKIP_APT=1) skips the OS
# package step. OS_RELEASE is the os-release file that tells the distribution. PYTHON defaults to
# the distribution's Python 3.11+ (python3.11 on Amazon Linux 2023, python3 on Ubuntu 24.04).
TWEET_ASSETS_ROOT="${TWEET_ASSETS_ROOT:-}"
NO_SYSTEMD="${NO_SYSTEMD:-0}"
SKIP_PACKAGES="${SKIP_PACKAGES:-${SKIP_APT:-0}}"
OS_RELEASE="${OS_RELEASE:-/etc/os-release}"
PYTHON="${PYTHON:-}"
SERVICE_USER="${SERVICE_USER:-dagster}"
# apt-get waits this long for the dpkg lock (cloud-init and unattended-upgrades hold it at first boot)
APT_LOCK_TIMEOUT_S="${APT_LOCK_TIMEOUT_S:-600}"
# ---------------------------------------------------------------------------------------------

# Every path below is inside $root, and the generated files name these full paths, so a scratch
# install is runnable as it is (TWEET_ASSETS_ROOT works like a --prefix, not a DESTDIR).
root="${TWEET_ASSETS_ROOT%/}"
opt_dir="$root/opt/tweet_assets"
venv="$opt_dir/venv"
etc_dir="$root/etc/tweet_assets"
env_file="$etc_dir/tweet_assets.env"
dagster_home="$root/var/lib/dagster"
unit_dir="$root/etc/systemd/system"

log() { printf 'tweet_assets user-data: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# write FILE MODE: stdin to FILE, replaced atomically; a no-op when the content is unchanged
write() {
  local target="$1" mode="$2" tmp
  mkdir -p "$(dirname "$target")"
  tmp="$(mktemp "$target.XXXXXX")"
  cat > "$tmp"
  chmod "$mode" "$tmp"
  if [[ -f "$target" ]] && cmp -s "$tmp" "$target"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$target"
    log "wrote $target"
  fi
}

setting() { printf "%s='%s'\n" "$1" "$2"; }

# The bucket for Dagster's compute logs: TWEET_ASSETS_COMPUTE_LOG_BUCKET, else the lake's bucket.
compute_log_bucket() {
  if [[ -n "$TWEET_ASSETS_COMPUTE_LOG_BUCKET" ]]; then
    printf '%s' "$TWEET_ASSETS_COMPUTE_LOG_BUCKET"
  elif [[ "$TWEET_ASSETS_LAKE_URL" == s3://* ]]; then
    local rest="${TWEET_ASSETS_LAKE_URL#s3://}"
    printf '%s' "${rest%%/*}"
  fi
}

pip_spec() {
  if [[ -n "$TWEET_ASSETS_PIP_SPEC" ]]; then
    printf '%s' "$TWEET_ASSETS_PIP_SPEC"
  elif [[ -n "$TWEET_ASSETS_WHEEL_URL" ]]; then
    printf '%s' "$TWEET_ASSETS_WHEEL_URL"
  else
    printf 'tweet_assets @ git+%s@%s' "$TWEET_ASSETS_GIT_URL" "$TWEET_ASSETS_GIT_REF"
  fi
}

validate() {
  [[ "$DAGSTER_WEBSERVER_PORT" =~ ^[0-9]+$ ]] || die "DAGSTER_WEBSERVER_PORT must be a number"
  [[ "$X_API_POOL_LIMIT" =~ ^[0-9]+$ ]] || die "X_API_POOL_LIMIT must be a whole number"
  [[ "$SERVICE_USER" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "SERVICE_USER is not a valid user name"
  [[ "$APT_LOCK_TIMEOUT_S" =~ ^[0-9]+$ ]] || die "APT_LOCK_TIMEOUT_S must be a whole number of seconds"
  [[ "$DAGSTER_PG_PORT" =~ ^[0-9]+$ ]] || die "DAGSTER_PG_PORT must be a number"
  local name
  for name in X_BEARER_TOKEN_PARAMETER DAGSTER_PG_PASSWORD_PARAMETER; do
    if [[ -n "${!name}" && ! "${!name}" =~ ^/[A-Za-z0-9_./-]+$ ]]; then
      die "$name must be an SSM parameter name starting with /"
    fi
  done
  case "$TWEET_ASSETS_TABLE_FORMAT" in
    hive) ;;
    iceberg)
      [[ "$TWEET_ASSETS_LAKE_URL" == s3://* ]] \
        || die "TWEET_ASSETS_TABLE_FORMAT=iceberg needs an s3:// TWEET_ASSETS_LAKE_URL (its catalog is Glue)"
      [[ "$TWEET_ASSETS_GLUE_DATABASE" =~ ^[a-z0-9_]+$ ]] \
        || die "TWEET_ASSETS_TABLE_FORMAT=iceberg needs TWEET_ASSETS_GLUE_DATABASE, a lowercase Glue database name ([a-z0-9_]), got '$TWEET_ASSETS_GLUE_DATABASE'"
      ;;
    *) die "TWEET_ASSETS_TABLE_FORMAT must be hive or iceberg, got '$TWEET_ASSETS_TABLE_FORMAT'" ;;
  esac
  if [[ "$TWEET_ASSETS_SOURCE" == x_api && -z "$X_BEARER_TOKEN_PARAMETER" ]]; then
    die "TWEET_ASSETS_SOURCE=x_api needs X_BEARER_TOKEN_PARAMETER (the SSM SecureString name)"
  fi
  local value
  local -a ecs_values=()
  for name in "${ECS_SETTINGS[@]}"; do ecs_values+=("${!name:-}"); done
  for value in "$TWEET_ASSETS_ROOT" "$TWEET_ASSETS_LAKE_URL" "$TWEET_ASSETS_SOURCE" "$X_QUERY" "$X_ACCOUNTS" "$X_FULL_ARCHIVE" "$TWEET_ASSETS_START_DATE" "$AWS_REGION" \
      "$DAGSTER_PG_HOST" "$DAGSTER_PG_DB" "$DAGSTER_PG_USERNAME" "$TWEET_ASSETS_COMPUTE_LOG_BUCKET" "$TWEET_ASSETS_GLUE_DATABASE" "${ecs_values[@]}"; do
    [[ "$value" != *$'\n'* ]] || die "settings must be single lines"
    [[ "$value" != *"'"* ]] || die "settings cannot contain a single quote (use double quotes in X_QUERY)"
  done
}

# The distribution, from os-release: sets os_family (apt | dnf) and the default PYTHON. Refuses
# what the script was not written for instead of failing halfway (no apt-get on Amazon Linux).
detect_os() {
  [[ -r "$OS_RELEASE" ]] || die "cannot read $OS_RELEASE to tell the distribution"
  local id version major
  # os-release(5): KEY=value lines, the value possibly quoted (read, not sourced)
  id="$(sed -n 's/^ID=//p' "$OS_RELEASE" | tr -d "\"'")"
  version="$(sed -n 's/^VERSION_ID=//p' "$OS_RELEASE" | tr -d "\"'")"
  major="${version%%.*}"
  case "$id" in
    ubuntu)
      if [[ ! "$major" =~ ^[0-9]+$ ]] || (( major < 24 )); then
        die "Ubuntu $version is not supported: use Ubuntu 24.04 LTS or newer (22.04's Python 3.10 is too old for polars 2.1 and pyarrow 26)"
      fi
      os_family=apt
      PYTHON="${PYTHON:-python3}"
      ;;
    amzn)
      [[ "$version" == 2023 ]] || die "Amazon Linux $version is not supported: use Amazon Linux 2023"
      os_family=dnf
      PYTHON="${PYTHON:-python3.11}"   # AL2023's python3 is 3.9
      ;;
    *)
      [[ "$SKIP_PACKAGES" == 1 ]] \
        || die "distribution '$id $version' is not supported: use Amazon Linux 2023 or Ubuntu 24.04 LTS"
      os_family=none
      PYTHON="${PYTHON:-python3}"
      ;;
  esac
  log "distribution: $id $version ($os_family, $PYTHON)"
}

install_packages() {
  if [[ "$SKIP_PACKAGES" == 1 ]]; then
    log "SKIP_PACKAGES=1: not installing OS packages"
  elif [[ "$os_family" == apt ]]; then
    export DEBIAN_FRONTEND=noninteractive
    # on first boot cloud-init and unattended-upgrades may hold the dpkg lock: wait for it
    apt-get -o "DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT_S" update -q
    apt-get -o "DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT_S" install -q -y --no-install-recommends \
      python3 python3-venv python3-pip git ca-certificates
  else
    # dnf waits for another dnf's lock by itself
    dnf install -q -y python3.11 python3.11-pip git ca-certificates shadow-utils
  fi
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is older than Python 3.11 (polars 2.1 and pyarrow 26 need 3.11+)"
}

create_user() {
  if [[ "$NO_SYSTEMD" == 1 ]]; then
    log "NO_SYSTEMD=1: not creating user $SERVICE_USER"
    return
  fi
  if ! id -u "$SERVICE_USER" > /dev/null 2>&1; then
    useradd --system --user-group --home-dir "$dagster_home" --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
}

install_project() {
  if [[ ! -x "$venv/bin/python" ]]; then
    "$PYTHON" -m venv "$venv"
  fi
  local -a extra=()
  if [[ -n "$TWEET_ASSETS_PIP_ARGS" ]]; then
    read -r -a extra <<< "$TWEET_ASSETS_PIP_ARGS"
  fi
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet "${extra[@]}" "$(pip_spec)"
  # (with the credential-free sample source: the X token is only ever read by the services)
  TWEET_ASSETS_SOURCE=sample "$venv/bin/python" -c "import tweet_assets.definitions" \
    || die "the installed project does not load (import tweet_assets.definitions)"
}

write_config() {
  write "$opt_dir/workspace.yaml" 0644 <<'YAML'
load_from:
  - python_module:
      module_name: tweet_assets.definitions
      location_name: tweet_assets
YAML

  # Settings for both services, as KEY='value' lines: single quotes keep spaces, $ and " literal
  # for systemd's EnvironmentFile= and for a shell's `set -a; . file` (the Airflow DAG's option).
  {
    echo "# Written by deploy/ec2/user-data.sh; re-run it (or edit and restart the services)."
    setting DAGSTER_HOME "$dagster_home"
    setting TWEET_ASSETS_LAKE_URL "$TWEET_ASSETS_LAKE_URL"
    setting TWEET_ASSETS_SOURCE "$TWEET_ASSETS_SOURCE"
    setting X_QUERY "$X_QUERY"
    [[ -z "$X_ACCOUNTS" ]] || setting X_ACCOUNTS "$X_ACCOUNTS"
    [[ -z "$X_FULL_ARCHIVE" ]] || setting X_FULL_ARCHIVE "$X_FULL_ARCHIVE"
    setting X_BEARER_TOKEN_PARAMETER "$X_BEARER_TOKEN_PARAMETER"
    [[ -z "$TWEET_ASSETS_START_DATE" ]] || setting TWEET_ASSETS_START_DATE "$TWEET_ASSETS_START_DATE"
    [[ -z "$AWS_REGION" ]] || setting AWS_REGION "$AWS_REGION"
    setting AWS_EC2_METADATA_V1_DISABLED true
    setting DAGSTER_WEBSERVER_PORT "$DAGSTER_WEBSERVER_PORT"
    if [[ -n "$DAGSTER_PG_HOST" ]]; then
      setting DAGSTER_PG_HOST "$DAGSTER_PG_HOST"
      setting DAGSTER_PG_PORT "$DAGSTER_PG_PORT"
      setting DAGSTER_PG_DB "$DAGSTER_PG_DB"
      setting DAGSTER_PG_USERNAME "$DAGSTER_PG_USERNAME"
      [[ -z "$DAGSTER_PG_PASSWORD_PARAMETER" ]] || setting DAGSTER_PG_PASSWORD_PARAMETER "$DAGSTER_PG_PASSWORD_PARAMETER"
    fi
    setting TWEET_ASSETS_COMPUTE_LOG_BUCKET "$(compute_log_bucket)"
    # the table format (issue #37): always written, empty when unused, because the ECS run
    # launcher copies each of them into the run tasks (deploy/ecs/dagster.yaml's env_vars)
    setting TWEET_ASSETS_TABLE_FORMAT "$TWEET_ASSETS_TABLE_FORMAT"
    setting TWEET_ASSETS_GLUE_DATABASE "$TWEET_ASSETS_GLUE_DATABASE"
    if [[ "$TWEET_ASSETS_TABLE_FORMAT" == iceberg ]]; then
      setting TWEET_ASSETS_ICEBERG_CATALOG glue
      setting PYICEBERG_CATALOG__GLUE__TYPE glue
    else
      setting TWEET_ASSETS_ICEBERG_CATALOG ""
    fi
    local name
    for name in "${ECS_SETTINGS[@]}"; do
      [[ -z "${!name:-}" ]] || setting "$name" "${!name}"
    done
    setting PYTHONUNBUFFERED 1
  } | write "$env_file" 0644

  # The production instance: the same text as deploy/dagster.yaml (a test keeps them equal).
  write "$dagster_home/dagster.yaml" 0644 <<'DAGSTER_YAML'
# Production Dagster instance for tweet_assets (Dagster 1.13). Copy to $DAGSTER_HOME/dagster.yaml.
# Every setting that differs per deployment comes from the environment (the services' env file, and
# the database password fetched from SSM Parameter Store at service start, like the X token):
#   DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_DB, DAGSTER_PG_USERNAME, DAGSTER_PG_PASSWORD
#   TWEET_ASSETS_COMPUTE_LOG_BUCKET, AWS_REGION
# Validate after editing:  DAGSTER_HOME=/var/lib/dagster dagster instance info
# The ECS fan-out variant is deploy/ecs/dagster.yaml (this file plus an EcsRunLauncher).

# --- Storage: runs, event logs (materializations, which partitions are done, pool slots) and
# schedule/sensor state in PostgreSQL (RDS), so they outlive the instance: a replaced instance
# pointed at the same database sees every run and backfill, and the schedule comes back running.
# dagster-postgres is installed with the project. RDS needs TLS: sslmode=require. The scheme names
# the driver dagster-postgres installs (psycopg2): SQLAlchemy 2.1's default for "postgresql" is psycopg 3.
storage:
  postgres:
    postgres_db:
      scheme: postgresql+psycopg2
      hostname:
        env: DAGSTER_PG_HOST
      port:
        env: DAGSTER_PG_PORT
      db_name:
        env: DAGSTER_PG_DB
      username:
        env: DAGSTER_PG_USERNAME
      password:
        env: DAGSTER_PG_PASSWORD
      params:
        sslmode: require

# --- Runs are queued and launched by dagster-daemon, never more than max_concurrent_runs at once.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator

# --- Concurrency. raw_tweets declares the pool "x_api": every step in that pool needs a slot, so a
# backfill (or a backfill plus the daily schedule) never calls the X API from more than
# `limit` steps at a time. A pool without a limit of its own gets default_limit; set x_api
# explicitly with `dagster instance concurrency set x_api 1` (or in the UI: Deployment > Concurrency).
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
    granularity: op

# --- Run monitoring (dagster-daemon). A run whose worker died (the daemon restarted under it,
# the instance was replaced) is failed, and the pool slots of a finished run are freed after
# free_slots_after_run_end_seconds: without it a run killed while raw_tweets held the x_api slot
# keeps the slot for good and every later run waits in the queue.
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
  free_slots_after_run_end_seconds: 120

# --- Tick retention (days; -1 keeps forever). The daemon purges old schedule and sensor ticks.
# Run retention: Dagster OSS has no setting for it; the code location's run_retention_schedule
# (tweet_assets/defs/retention/runs.py) deletes runs older than TWEET_ASSETS_RUN_RETENTION_DAYS (90) that
# materialized nothing. Compute logs expire by an S3 lifecycle rule on their prefix (deploy/README.md).
retention:
  schedule:
    purge_after_days: 90
  sensor:
    purge_after_days:
      skipped: 7
      failure: 30
      success: 30
      started: -1

# --- Compute logs (stdout/stderr of each step) in S3, uploaded every 30 s while a step runs and
# at its end, read back by the webserver. The role needs s3:PutObject/GetObject on the prefix and
# s3:ListBucket on the bucket for that prefix (deploy/README.md, "Compute logs in S3").
compute_logs:
  module: dagster_aws.s3.compute_log_manager
  class: S3ComputeLogManager
  config:
    bucket:
      env: TWEET_ASSETS_COMPUTE_LOG_BUCKET
    prefix: tweet_assets/dagster/compute_logs
    region:
      env: AWS_REGION
    upload_interval: 30
    skip_empty_files: true

telemetry:
  enabled: false
DAGSTER_YAML
}

write_launcher() {
  # Fetches the X bearer token and the Dagster database password from SSM at service start (IMDSv2
  # only), then execs the service. The secrets live only in the service's environment: never in a
  # file, a unit or a log line.
  rm -f "$opt_dir/bin/fetch-x-token.py"   # the name of this helper before it fetched two secrets
  write "$opt_dir/bin/fetch-parameter.py" 0755 <<'PYTHON'
"""Print a secret from SSM Parameter Store (SecureString, decrypted) to stdout, in AWS_REGION: the
parameter named by the environment variable given as the argument (default
X_BEARER_TOKEN_PARAMETER; the launcher also asks for DAGSTER_PG_PASSWORD_PARAMETER); or, with
--region, print the instance's region from IMDSv2 (a session token first; IMDSv1 is never used, and
boto3 is told the same through AWS_EC2_METADATA_V1_DISABLED).
Errors name the parameter and what to check, never the value.
"""
import os
import sys
import urllib.request

IMDS = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip("/")


def imds_region() -> str:
    put = urllib.request.Request(
        f"{IMDS}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    with urllib.request.urlopen(put, timeout=5) as response:
        token = response.read().decode()
    get = urllib.request.Request(
        f"{IMDS}/latest/meta-data/placement/region", headers={"X-aws-ec2-metadata-token": token}
    )
    with urllib.request.urlopen(get, timeout=5) as response:
        return response.read().decode().strip()


def main() -> int:
    os.environ["AWS_EC2_METADATA_V1_DISABLED"] = "true"
    if sys.argv[1:] == ["--region"]:
        try:
            print(imds_region())
        except OSError as exc:
            print(f"fetch-parameter: cannot read the region from IMDSv2 at {IMDS} ({exc}); set AWS_REGION", file=sys.stderr)
            return 2
        return 0
    name = os.environ[sys.argv[1] if sys.argv[1:] else "X_BEARER_TOKEN_PARAMETER"]
    region = os.environ["AWS_REGION"]
    import boto3

    try:
        response = boto3.client("ssm", region_name=region).get_parameter(Name=name, WithDecryption=True)
    except Exception as exc:  # noqa: BLE001 - any failure stops the service with a clear message
        print(
            f"fetch-parameter: cannot read SSM parameter {name} in {region}: {type(exc).__name__}: {exc}. "
            "Check that it exists and that the instance role allows ssm:GetParameter and kms:Decrypt on it.",
            file=sys.stderr,
        )
        return 3
    parameter = response["Parameter"]
    if parameter.get("Type") != "SecureString":
        print(f"fetch-parameter: SSM parameter {name} is a {parameter.get('Type')}, not a SecureString", file=sys.stderr)
        return 4
    if not parameter.get("Value"):
        print(f"fetch-parameter: SSM parameter {name} is empty", file=sys.stderr)
        return 4
    sys.stdout.write(parameter["Value"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
PYTHON

  write "$opt_dir/bin/tweet-assets-run" 0755 <<LAUNCHER
#!/usr/bin/env bash
# Runs a tweet_assets service: sets AWS_REGION from IMDSv2 when it is unset and AWS is used (and
# AWS_DEFAULT_REGION to it when that is unset), reads
# the X bearer token from SSM when X_BEARER_TOKEN_PARAMETER is set and the Dagster database password
# when DAGSTER_PG_PASSWORD_PARAMETER is set, then execs the command given.
# Generated by deploy/ec2/user-data.sh.
set -euo pipefail
export AWS_EC2_METADATA_V1_DISABLED=true
if [[ -z "\${AWS_REGION:-}" && ( -n "\${X_BEARER_TOKEN_PARAMETER:-}\${DAGSTER_PG_PASSWORD_PARAMETER:-}" || "\${TWEET_ASSETS_LAKE_URL:-}" == s3://* ) ]]; then
  AWS_REGION="\$("$venv/bin/python" "$opt_dir/bin/fetch-parameter.py" --region)"
  export AWS_REGION
fi
# boto3 takes its default region from AWS_DEFAULT_REGION, not AWS_REGION: a client given no region
# (pyiceberg's GlueCatalog, TWEET_ASSETS_TABLE_FORMAT=iceberg) gets the same one (ECS sets both)
if [[ -n "\${AWS_REGION:-}" && -z "\${AWS_DEFAULT_REGION:-}" ]]; then
  export AWS_DEFAULT_REGION="\$AWS_REGION"
fi
if [[ -n "\${X_BEARER_TOKEN_PARAMETER:-}" ]]; then
  X_BEARER_TOKEN="\$("$venv/bin/python" "$opt_dir/bin/fetch-parameter.py" X_BEARER_TOKEN_PARAMETER)"
  export X_BEARER_TOKEN
fi
if [[ -n "\${DAGSTER_PG_PASSWORD_PARAMETER:-}" ]]; then
  DAGSTER_PG_PASSWORD="\$("$venv/bin/python" "$opt_dir/bin/fetch-parameter.py" DAGSTER_PG_PASSWORD_PARAMETER)"
  export DAGSTER_PG_PASSWORD
fi
exec "\$@"
LAUNCHER
}

write_units() {
  local common
  common="User=$SERVICE_USER
Group=$SERVICE_USER
EnvironmentFile=$env_file
WorkingDirectory=$dagster_home
Restart=on-failure
RestartSec=10
StandardOutput=journal
StandardError=journal
NoNewPrivileges=true
PrivateTmp=true
ProtectSystem=full
ProtectHome=true
UMask=0027"

  write "$unit_dir/dagster-webserver.service" 0644 <<UNIT
[Unit]
Description=Dagster webserver for tweet_assets (127.0.0.1 only)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
$common
SyslogIdentifier=dagster-webserver
ExecStart=$opt_dir/bin/tweet-assets-run $venv/bin/dagster-webserver --host 127.0.0.1 --port \${DAGSTER_WEBSERVER_PORT} --workspace $opt_dir/workspace.yaml

[Install]
WantedBy=multi-user.target
UNIT

  write "$unit_dir/dagster-daemon.service" 0644 <<UNIT
[Unit]
Description=Dagster daemon for tweet_assets (schedules, run queue, backfills)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
$common
SyslogIdentifier=dagster-daemon
ExecStart=$opt_dir/bin/tweet-assets-run $venv/bin/dagster-daemon run --workspace $opt_dir/workspace.yaml

[Install]
WantedBy=multi-user.target
UNIT
}

# --- filtered stream (issue #19; owner: stream) ------------------------------------------------
# tweet-assets-stream.service: `tweet-assets stream` through the same launcher (bearer token from
# SSM), one process (the stream allows one connection per app), restarted always; on stop it gets
# SIGTERM and up to 60 s to publish its open spools. The spool lives in /var/lib/tweet_assets (it
# must survive restarts: spools left by a crash are published first on the next start).
write_stream_unit() {
  local stream_env="$etc_dir/stream.env" spool="$root/var/lib/tweet_assets/stream_spool"
  [[ "$TWEET_ASSETS_STREAM" =~ ^[01]$ ]] || die "TWEET_ASSETS_STREAM must be 0 or 1"
  mkdir -p "$spool"
  [[ "$NO_SYSTEMD" == 1 ]] || chown -R "$SERVICE_USER:$SERVICE_USER" "$root/var/lib/tweet_assets"
  if [[ -n "$TWEET_ASSETS_STREAM_RULES" ]]; then
    printf '%s\n' "$TWEET_ASSETS_STREAM_RULES" | write "$etc_dir/stream-rules.json" 0644
  fi
  {
    printf "TWEET_ASSETS_STREAM_SPOOL_DIR='%s'\n" "$spool"
    [[ -z "$TWEET_ASSETS_STREAM_RULES" ]] || printf "TWEET_ASSETS_STREAM_RULES='@%s'\n" "$etc_dir/stream-rules.json"
  } | write "$stream_env" 0644
  write "$unit_dir/tweet-assets-stream.service" 0644 <<UNIT
[Unit]
Description=tweet_assets filtered-stream consumer (X API v2 -> raw_stream segments in the lake)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=$SERVICE_USER
Group=$SERVICE_USER
EnvironmentFile=$env_file
EnvironmentFile=$stream_env
WorkingDirectory=$root/var/lib/tweet_assets
ExecStart=$opt_dir/bin/tweet-assets-run $venv/bin/tweet-assets stream
Restart=always
RestartSec=10
KillSignal=SIGTERM
TimeoutStopSec=60
StandardOutput=journal
StandardError=journal
SyslogIdentifier=tweet-assets-stream
NoNewPrivileges=true
PrivateTmp=true
ProtectSystem=full
ProtectHome=true
UMask=0027

[Install]
WantedBy=multi-user.target
UNIT
}

start_stream_service() {
  if [[ "$TWEET_ASSETS_STREAM" != 1 ]]; then
    log "filtered stream: unit written, not enabled (TWEET_ASSETS_STREAM=1 enables it)"
    return
  fi
  if [[ "$NO_SYSTEMD" == 1 ]]; then
    log "NO_SYSTEMD=1: tweet-assets-stream.service written, not started"
    return
  fi
  systemctl daemon-reload
  systemctl enable tweet-assets-stream.service
  systemctl restart tweet-assets-stream.service
  log "filtered stream started: journalctl -u tweet-assets-stream"
}
# --- end filtered stream ------------------------------------------------------------------------

init_instance() {
  # Creates or migrates Dagster's storage and sets the X API pool limit; both are idempotent.
  local -a as_user=()
  if [[ "$NO_SYSTEMD" != 1 ]]; then
    chown -R "$SERVICE_USER:$SERVICE_USER" "$dagster_home"
    chmod 0750 "$dagster_home"
    chown "root:$SERVICE_USER" "$env_file"
    chmod 0640 "$env_file"
    as_user=(runuser -u "$SERVICE_USER" --)
  fi
  # with the services' settings and through their launcher (PostgreSQL needs the password from SSM)
  (
    cd "$dagster_home"
    set -a
    # shellcheck disable=SC1090  # the env file written above
    . "$env_file"
    set +a
    "${as_user[@]}" "$opt_dir/bin/tweet-assets-run" "$venv/bin/dagster" instance migrate > /dev/null
    "${as_user[@]}" "$opt_dir/bin/tweet-assets-run" "$venv/bin/dagster" instance concurrency set x_api "$X_API_POOL_LIMIT" > /dev/null
  )
  log "DAGSTER_HOME=$dagster_home ready; pool x_api limit $X_API_POOL_LIMIT"
}

start_services() {
  if [[ "$NO_SYSTEMD" == 1 ]]; then
    log "NO_SYSTEMD=1: units written to $unit_dir, not started"
    return
  fi
  systemctl daemon-reload
  systemctl enable dagster-webserver.service dagster-daemon.service
  # restart (not just start) so a re-run picks up a new version or new settings
  systemctl restart dagster-webserver.service dagster-daemon.service
  log "services started: journalctl -u dagster-webserver -u dagster-daemon"
}

main() {
  validate
  if [[ -n "$root" ]]; then
    mkdir -p "$root"
  elif [[ "$(id -u)" != 0 ]]; then
    die "run as root (or set TWEET_ASSETS_ROOT to install into a scratch prefix)"
  fi
  detect_os
  install_packages
  create_user
  install_project
  write_config
  write_launcher
  write_units
  write_stream_unit       # filtered stream (issue #19)
  init_instance
  start_services
  start_stream_service    # filtered stream (issue #19)
  log "done: installed $(pip_spec)"
}

main "$@"
