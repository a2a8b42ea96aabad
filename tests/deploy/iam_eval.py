"""A small IAM identity-policy evaluator for the tests (moto 5 has no ``simulate_custom_policy``
and its IAM enforcement ignores S3 and KMS condition keys).

It models what our policies use and refuses anything else, so a policy that grows a feature the
evaluator cannot judge fails its test instead of passing silently:
- ``Effect`` Allow/Deny, ``Action`` and ``Resource`` (string or list) with ``*``/``?`` wildcards;
  actions match case-insensitively, resources case-sensitively (as in AWS);
- ``Condition`` operators ``StringEquals``, ``StringLike`` (and their ``...IfExists`` forms),
  ``ArnEquals``/``ArnLike`` (both wildcard matches, as IAM documents them): keys
  are ANDed, the values of one key ORed; a missing key fails the condition unless ``IfExists``;
- an explicit Deny wins, then any Allow, else the implicit deny.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SUPPORTED_OPERATORS = {
    "StringEquals", "StringLike", "StringEqualsIfExists", "StringLikeIfExists",
    "ArnEquals", "ArnLike",  # IAM reference: ArnEquals matches like ArnLike (wildcards allowed)
}


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    # IAM wildcards are only * and ? (no [..] classes as in fnmatch)
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.IGNORECASE if ignore_case else 0) is not None


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.action} on {self.resource} {self.context or ''}".strip()


def _condition_holds(condition: dict, context: dict) -> bool:
    for operator, tests in condition.items():
        if operator not in SUPPORTED_OPERATORS:
            raise NotImplementedError(f"condition operator {operator} is not modelled by iam_eval")
        if_exists = operator.endswith("IfExists")
        like = operator.startswith(("StringLike", "Arn"))
        for key, expected in tests.items():
            if key not in context:
                if if_exists:
                    continue
                return False
            actual = context[key]
            if like:
                ok = any(_glob(pattern, actual) for pattern in _as_list(expected))
            else:
                ok = actual in _as_list(expected)
            if not ok:
                return False
    return True


def _statement_matches(statement: dict, request: Request) -> bool:
    for unsupported in ("NotAction", "NotResource", "NotPrincipal", "Principal"):
        if unsupported in statement:
            raise NotImplementedError(f"{unsupported} is not modelled by iam_eval (identity policies only)")
    if not any(_glob(p, request.action, ignore_case=True) for p in _as_list(statement["Action"])):
        return False
    if not any(_glob(p, request.resource) for p in _as_list(statement["Resource"])):
        return False
    return _condition_holds(statement.get("Condition", {}), request.context)


def is_allowed(policy: dict, request: Request) -> bool:
    statements = policy["Statement"]
    statements = [statements] if isinstance(statements, dict) else statements
    matching = [s for s in statements if _statement_matches(s, request)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


# --- boto3 calls -> IAM requests (the S3 authorization reference: "Actions, resources and
# condition keys for Amazon S3"); an unknown operation raises so the mapping is reviewed.
S3_OBJECT_ACTIONS = {
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "DeleteObject": "s3:DeleteObject",
}


def requests_for_call(service: str, operation: str, params: dict, *, region: str, account: str) -> list[Request]:
    """Every IAM request one call needs: a copy reads its source and writes its destination
    (S3 reference: CopyObject/UploadPartCopy need s3:GetObject on the source, s3:PutObject on the
    target)."""
    if service == "s3" and operation in ("CopyObject", "UploadPartCopy"):
        source = params["CopySource"].split("?")[0].lstrip("/")
        return [
            Request("s3:GetObject", f"arn:aws:s3:::{source}"),
            Request("s3:PutObject", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"),
        ]
    if service == "s3" and operation == "DeleteObjects":
        # S3 reference: DeleteObjects is authorized as s3:DeleteObject on each key it names
        return [Request("s3:DeleteObject", f"arn:aws:s3:::{params['Bucket']}/{key}") for key in params["Keys"]]
    if service == "glue" and operation in GLUE_OPERATIONS:
        # Glue docs, "Specifying AWS Glue resource ARNs": a table operation is authorized on the
        # catalog, the database and the table; a database operation on the catalog and the database.
        # GetTables names no table: it is authorized on the catalog and the database, and answers
        # only the tables the caller may GetTables on (Glue's IAM examples, "Filter tables by
        # GetTables permission"), which a test checks separately.
        if operation in GLUE_DATABASE_OPERATIONS:
            database = params["DatabaseInput"]["Name"] if "DatabaseInput" in params else params["Name"]
        else:
            database = params["DatabaseName"]
        base = f"arn:aws:glue:{region}:{account}"
        resources = [f"{base}:catalog", f"{base}:database/{database}"]
        if operation not in GLUE_DATABASE_OPERATIONS and operation != "GetTables":
            table = params["TableInput"]["Name"] if "TableInput" in params else params.get("TableName") or params["Name"]
            resources.append(f"{base}:table/{database}/{table}")
        return [Request(f"glue:{operation}", resource) for resource in resources]
    return [request_for_call(service, operation, params, region=region, account=account)]


def requests_for_answer(service: str, operation: str, params: dict, status: int | None) -> list[Request]:
    """What else the answer a call got needs: S3 answers a GetObject or HeadObject of a missing key
    with 404 only when the caller may also s3:ListBucket the bucket, else with 403 AccessDenied (S3
    API reference, HeadObject and GetObject, "Permissions"). That permission is judged for the
    object request, which names no prefix: modelled as s3:ListBucket without an s3:prefix key."""
    if service == "s3" and operation in ("GetObject", "HeadObject") and status == 404:
        return [Request("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}")]
    return []


GLUE_DATABASE_OPERATIONS = ("GetDatabase", "CreateDatabase", "DeleteDatabase")
GLUE_OPERATIONS = (*GLUE_DATABASE_OPERATIONS, "GetTable", "GetTables", "CreateTable", "UpdateTable", "DeleteTable", "BatchCreatePartition")


def request_for_call(service: str, operation: str, params: dict, *, region: str, account: str) -> Request:
    if service == "s3":
        bucket = params["Bucket"]
        if operation in S3_OBJECT_ACTIONS:
            return Request(S3_OBJECT_ACTIONS[operation], f"arn:aws:s3:::{bucket}/{params['Key']}")
        if operation in ("ListObjectsV2", "ListObjects"):
            return Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": params.get("Prefix", "")})
        if operation == "ListMultipartUploads":  # no s3:prefix condition key for this action
            return Request("s3:ListBucketMultipartUploads", f"arn:aws:s3:::{bucket}")
    if service == "ssm" and operation == "GetParameter":
        name = params["Name"]
        return Request("ssm:GetParameter", f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}")
    raise NotImplementedError(f"no IAM mapping for {service}:{operation}; add it to iam_eval.request_for_call")

