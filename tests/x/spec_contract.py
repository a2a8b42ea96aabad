"""A reader of X's OpenAPI specification (``../shared/x-api-v2/openapi/openapi-<version>.json``)
that checks one sent request against it: the operation (path template and method), each query
parameter's name, type, bounds (minimum/maximum, minLength/maxLength, minItems/maxItems), pattern,
format ``date-time`` and enum items (comma-separated arrays, ``explode: false``), the required
parameters, a JSON body's properties, and the auth scheme of the operation's ``security``
(``Bearer`` → BearerToken/OAuth2UserToken, ``OAuth`` 1.0a → UserToken); and an answer's JSON body
against the operation's response schema (``openapi-schema-validator``'s OpenAPI 3.0 validator:
``nullable``, ``$ref`` into the spec's components)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

SPECS = Path(__file__).resolve().parents[2] / ".." / "shared" / "x-api-v2" / "openapi"
VERSIONS = {"tweets": "2.159", "posts": "2.167"}


def spec_path(version: str) -> Path:
    return SPECS / f"openapi-{version}.json"


class Spec:
    def __init__(self, version: str):
        self.version = version
        self.doc = json.loads(spec_path(version).read_text())
        self.templates = sorted(
            ((re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path) for path in self.doc["paths"]),
            key=lambda t: (t[1].count("{"), -len(t[1])),
        )

    def resolve(self, node: dict) -> dict:
        while isinstance(node, dict) and "$ref" in node:
            target = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    def operation(self, method: str, path: str) -> tuple[str, dict]:
        for pattern, template in self.templates:
            if pattern.match(path) and method.lower() in self.doc["paths"][template]:
                return template, self.doc["paths"][template][method.lower()]
        raise AssertionError(f"spec {self.version}: no operation {method} {path}")

    def violations(self, method: str, url: str, headers: dict, body: bytes | None = None) -> list[str]:
        """What ``spec`` rejects in the request (empty: it conforms)."""
        parts = urlsplit(url)
        template, op = self.operation(method, parts.path)
        where = f"{method} {template} (spec {self.version})"
        found: list[str] = []
        params = {p["name"]: p for p in (self.resolve(p) for p in op.get("parameters", [])) if p.get("in") == "query"}
        sent = dict(parse_qsl(parts.query, keep_blank_values=True))
        for name, value in sent.items():
            if name not in params:
                found.append(f"{where}: unknown query parameter {name!r}")
                continue
            found += [f"{where}: {name}: {v}" for v in self._value(self.resolve(params[name].get("schema", {})), value)]
        for name, param in params.items():
            if param.get("required") and name not in sent:
                found.append(f"{where}: required query parameter {name!r} missing")
        found += self._auth(op, headers, where)
        if body:
            found += self._body(op, body, where)
        return found

    def response_violations(self, method: str, path: str, status: int, body) -> list[str]:
        """What the spec's schema of ``method path``'s ``status`` answer rejects in ``body`` (parsed JSON)."""
        from openapi_schema_validator import OAS30Validator

        template, op = self.operation(method, path)
        response = self.resolve(op["responses"][str(status)])
        schema = {**response["content"]["application/json"]["schema"], "components": self.doc["components"]}
        where = f"{method} {template} {status} (spec {self.version})"
        return [f"{where}: {'/'.join(str(p) for p in error.absolute_path)}: {error.message}" for error in OAS30Validator(schema).iter_errors(body)]

    def _value(self, schema: dict, value: str) -> list[str]:
        schema = self.resolve(schema)
        if "oneOf" in schema or "anyOf" in schema:
            options = [self._value(s, value) for s in schema.get("oneOf") or schema.get("anyOf")]
            return [] if any(not o for o in options) else options[0]
        kind = schema.get("type")
        if kind == "array":
            items = value.split(",")
            problems = [p for item in items for p in self._value(schema.get("items", {}), item)]
            if len(items) < schema.get("minItems", 0) or len(items) > schema.get("maxItems", 10**9):
                problems.append(f"{len(items)} items outside [{schema.get('minItems', 0)}, {schema.get('maxItems', '∞')}]")
            if schema.get("uniqueItems") and len(set(items)) != len(items):
                problems.append("repeated items")
            return problems
        if kind == "integer":
            try:
                number = int(value)
            except ValueError:
                return [f"{value!r} is not an integer"]
            if number < schema.get("minimum", -(10**30)) or number > schema.get("maximum", 10**30):
                return [f"{number} outside [{schema.get('minimum')}, {schema.get('maximum')}]"]
            return []
        if kind == "boolean":
            return [] if value in ("true", "false") else [f"{value!r} is not true/false"]
        problems = []
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{value!r} is not one of the spec's enum")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 10**9):
            problems.append(f"length {len(value)} outside [{schema.get('minLength', 0)}, {schema.get('maxLength', '∞')}]")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{value!r} is not an RFC 3339 date-time")
        return problems

    def _auth(self, op: dict, headers: dict, where: str) -> list[str]:
        auth = headers.get("Authorization", "")
        schemes = {name for requirement in op.get("security", []) for name in requirement}
        used = {"BearerToken", "OAuth2UserToken"} if auth.startswith("Bearer ") else {"UserToken"} if auth.startswith("OAuth ") else set()
        if not used & schemes:
            return [f"{where}: authorization {auth.split(' ')[0] or 'none'!r} is not among the operation's security {sorted(schemes)}"]
        return []

    def _body(self, op: dict, body: bytes, where: str) -> list[str]:
        schema = self.resolve(self.resolve(op.get("requestBody", {})).get("content", {}).get("application/json", {}).get("schema", {}))
        sent = json.loads(body)
        known = set(schema.get("properties", {}))
        problems = [f"{where}: body property {k!r} not in the spec" for k in sent if known and k not in known]
        problems += [f"{where}: body property {k!r} required" for k in schema.get("required", []) if k not in sent]
        for key, value in sent.items():
            prop = self.resolve(schema.get("properties", {}).get(key, {}))
            if "enum" in prop and value not in prop["enum"]:
                problems.append(f"{where}: body {key}={value!r} not in {prop['enum']}")
        return problems


@lru_cache(maxsize=None)
def spec(version: str) -> Spec:
    return Spec(version)
