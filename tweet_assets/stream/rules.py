"""The filtered stream's rules as configuration: load, plan, validate with ``dry_run``, apply.

API (X API v2 reference, "POST /2/tweets/search/stream/rules", "GET /2/tweets/search/stream/rules"):
a rule is ``{"value": <query>, "tag": <label>}`` and the API gives it an ``id``; ``POST`` with
``{"add": [...]}`` or ``{"delete": {"ids": [...]}}`` and ``?dry_run=true`` validates without
changing anything (invalid rules come back in ``errors``; the response's ``meta.summary`` counts
``valid``/``invalid``/``created``/``deleted``). Calls go through tweepy's ``StreamingClient``
(``get_rules``, ``add_rules``, ``delete_rules``; app-only bearer token).

Ownership: this project owns the rules whose ``tag`` starts with ``tag_prefix`` (default
``tweet_assets:``); a configured tag without the prefix gets it. A sync adds the configured rules
that are missing, deletes owned rules that are no longer configured, and never touches rules of
another prefix (another app's, or a person's) unless ``prune_foreign=True``.

Configuration: JSON, a list of ``{"value": ..., "tag": ...}`` objects (``tag`` optional: then the
prefix plus the value), from the ``TWEET_ASSETS_STREAM_RULES`` variable or the file it names
(``@/path/rules.json``); or ``value<TAB>tag`` lines, where a line of ``#`` followed by a space is a
comment and ``#dagster`` is a hashtag rule.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import orjson

TAG_PREFIX = "tweet_assets:"
#: Longest rule value per access tier (X API v2, filtered stream "Build a rule"): 512 characters
#: (Pro and lower), 1,024 (Enterprise). Checked here at 1,024; dry_run tells the tier's own limit.
MAX_RULE_LENGTH = 1024


class RulesError(ValueError):
    """Bad rules configuration, or the API found rules invalid (dry run); nothing was changed."""


@dataclass(frozen=True)
class Rule:
    """One filtered-stream rule: ``value`` (the query), ``tag`` (with the owner prefix)."""

    value: str
    tag: str


def load_rules(text: str, tag_prefix: str = TAG_PREFIX) -> list[Rule]:
    """Rules from JSON (``[{"value", "tag"}]``), ``@path`` to such a file, or ``value<TAB>tag`` lines.

    Raises:
        RulesError: unreadable file, bad JSON shape, an empty or over-long value, duplicates.
    """
    text = text.strip()
    if text.startswith("@"):
        path = os.path.expanduser(text[1:])
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read().strip()
        except OSError as exc:
            raise RulesError(f"rules file {path}: {exc}") from None
    if not text:
        raise RulesError("no rules configured: set TWEET_ASSETS_STREAM_RULES to a JSON list of {value, tag}, or @file")
    if text.startswith("["):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise RulesError(f"rules are not valid JSON: {exc}") from None
    else:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip() and not _comment(line):
                value, _, tag = line.partition("\t")
                items.append({"value": value.strip(), **({"tag": tag.strip()} if tag.strip() else {})})
    rules: list[Rule] = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("value"), str) or not item["value"].strip():
            raise RulesError(f"rule {n}: {item!r} is not {{'value': <non-empty query>, 'tag': <label>}}")
        value = item["value"].strip()
        if len(value) > MAX_RULE_LENGTH:
            raise RulesError(f"rule {n}: value is {len(value)} characters; the API allows at most {MAX_RULE_LENGTH} (512 below Enterprise)")
        tag = item.get("tag")
        tag = str(tag).strip() if tag else value
        rules.append(Rule(value, tag if tag.startswith(tag_prefix) else tag_prefix + tag))
    seen = set()
    for rule in rules:
        if rule.value in seen:
            raise RulesError(f"rule value {rule.value!r} is configured twice")
        seen.add(rule.value)
    return rules


def _comment(line: str) -> bool:
    """A comment line: ``#`` alone or followed by a space (``# my rules``). ``#dagster`` is a
    rule: X's hashtag operator is ``#`` directly followed by the tag (filtered stream, "Build a
    rule"), so it never starts with a space."""
    text = line.strip()
    return text == "#" or text.startswith(("# ", "#\t"))


def plan(current: list[dict], desired: list[Rule], tag_prefix: str = TAG_PREFIX, prune_foreign: bool = False) -> tuple[list[Rule], list[dict]]:
    """``(to add, to delete)``: configured rules not active (same value and tag), and active rules
    (``{"id", "value", "tag"}`` as the API lists them) owned by ``tag_prefix`` (or, with
    ``prune_foreign``, any) that are not configured. A rule whose tag changed is deleted and added."""
    active = {(r.get("value"), r.get("tag")) for r in current}
    wanted = {(r.value, r.tag) for r in desired}
    adds = [r for r in desired if (r.value, r.tag) not in active]
    deletes = [
        r for r in current
        if (r.get("value"), r.get("tag")) not in wanted and (prune_foreign or str(r.get("tag") or "").startswith(tag_prefix))
    ]
    return adds, deletes


#: ``GET /2/tweets/search/stream/rules``: ``max_results`` 1-1000 (default 1000), ``pagination_token``
#: from ``meta.next_token`` (X's OpenAPI specs 2.159 and 2.167).
RULES_PAGE_SIZE = 1000


class _PagingParams(logging.Filter):
    """Drops tweepy's "Unexpected parameter: max_results|pagination_token" (tweepy 4.17's
    ``get_rules`` declares only ``ids``, yet sends every parameter: X's spec has both)."""

    MESSAGES = {"Unexpected parameter: max_results", "Unexpected parameter: pagination_token"}

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.MESSAGES


class _paging_params_expected:
    """While listing rules, the ``tweepy.client`` logger keeps quiet about the two paging
    parameters we send on purpose; any other unexpected parameter is still logged."""

    _filter = _PagingParams()

    def __enter__(self):
        logging.getLogger("tweepy.client").addFilter(self._filter)

    def __exit__(self, *exc):
        logging.getLogger("tweepy.client").removeFilter(self._filter)


def list_rules(client) -> list[dict]:
    """Every active rule (``{"id", "value", "tag"}``), following ``meta.next_token`` through every
    page of ``GET /2/tweets/search/stream/rules`` (``max_results=1000``, ``pagination_token``).

    ``client`` is a ``tweepy.StreamingClient`` with ``return_type=dict``.

    Raises:
        tweepy.TweepyException (one of ``tweet_assets.x.session.REQUEST_ERRORS``): HTTP errors.
    """
    rules: list[dict] = []
    token = None
    while True:
        params = {"max_results": RULES_PAGE_SIZE, **({"pagination_token": token} if token else {})}
        with _paging_params_expected():
            page = client.get_rules(**params)
        rules.extend(page.get("data") or [])
        token = (page.get("meta") or {}).get("next_token")
        if not token:
            return rules


def _check(response: dict, action: str) -> dict:
    errors = response.get("errors") or []
    if errors:
        details = "; ".join(
            f"{e.get('value') or e.get('id') or ''}: {e.get('title', '')} {e.get('details') or e.get('detail') or ''}".strip() for e in errors if isinstance(e, dict)
        )
        raise RulesError(f"{action}: the API found {len(errors)} problem(s), nothing changed: {details}")
    return response


def sync_rules(
    client, desired: list[Rule], log: logging.Logger, tag_prefix: str = TAG_PREFIX, prune_foreign: bool = False, prune_to_empty: bool = False
) -> list[dict]:
    """Make the stream's rules match ``desired``; returns the active rules (``{"id", "value",
    "tag"}``) after the sync, each logged with its id.

    ``client`` is a ``tweepy.StreamingClient`` with ``return_type=dict``. Every change is sent
    with ``dry_run=true`` first, the deletes and adds both validated before either is applied
    (passed as the string ``"true"``, the API reference's spelling: tweepy would send ``True``).

    A configuration that parses to zero rules while the stream has rules deletes nothing unless
    ``prune_to_empty`` (``TWEET_ASSETS_STREAM_PRUNE_TO_EMPTY=1``) says so: an empty set is far
    more often a mistake (every line taken for a comment, a file emptied) than a wish.

    Raises:
        RulesError: the dry run found an invalid rule (nothing is changed), applying failed, or
            zero rules are configured while rules exist and ``prune_to_empty`` is False.
        tweepy.TweepyException: HTTP errors (401 bad token, 403 access tier, ...).
    """
    current = list_rules(client)
    adds, deletes = plan(current, desired, tag_prefix, prune_foreign)
    if not desired and deletes and not prune_to_empty:
        raise RulesError(
            f"the configured rules parse to zero rules while the stream has {len(current)}; nothing was deleted. "
            "Check TWEET_ASSETS_STREAM_RULES, or set TWEET_ASSETS_STREAM_PRUNE_TO_EMPTY=1 to delete them all."
        )
    from tweet_assets.x.session import StreamRule

    add_rules = [StreamRule(value=r.value, tag=r.tag) for r in adds]
    delete_ids = [r["id"] for r in deletes]
    if delete_ids:
        _check(client.delete_rules(delete_ids, dry_run="true"), "delete (dry run)")
    if add_rules:
        _check(client.add_rules(add_rules, dry_run="true"), "add (dry run)")
    if delete_ids:
        _check(client.delete_rules(delete_ids), "delete")
        for r in deletes:
            log.info("rule deleted: id %s tag %r value %r", r.get("id"), r.get("tag"), r.get("value"))
    if add_rules:
        _check(client.add_rules(add_rules), "add")
        for r in adds:
            log.info("rule added: tag %r value %r", r.tag, r.value)
    active = list_rules(client) if (adds or deletes) else current
    for r in active:
        log.info("active rule: id %s tag %r value %r", r.get("id"), r.get("tag"), r.get("value"))
    if not active:
        log.warning("the stream has no rules: it will deliver nothing")
    return active
