"""Several collections on the one filtered-stream connection (the API allows one per app).

Rules (X API v2, "POST /2/tweets/search/stream/rules": a rule is ``{value, tag}``): each stream
collection's rules are tagged ``tweet_assets:<collection>:<tag>`` (:func:`collection_rules`); a value
two collections both configure is one rule (the API refuses a duplicate value) tagged
``tweet_assets:<a>+<b>:<tag>``. Landing: each message carries the rules it matched
(``matching_rules: [{id, tag}]``); :class:`CollectionRouter` lands it in the segments of every
collection those tags name (``<lake>/<collection>/raw_stream/dt=…``), so a message matching two
collections lands in both, and a message naming no collection in the environment's ``raw_stream/``.
"""

from __future__ import annotations

import orjson

from tweet_assets.stream.rules import TAG_PREFIX, Rule, RulesError


def collection_rules(rules_by_collection: dict[str, list[tuple[str, str | None]]], tag_prefix: str = TAG_PREFIX) -> list[Rule]:
    """``{collection: [(value, tag or None)]}`` as filtered-stream rules, ``tag_prefix<collections>:<tag>``.

    Raises:
        RulesError: an empty value, or one collection configuring a value twice.
    """
    by_value: dict[str, tuple[list[str], str]] = {}
    for name, rules in sorted(rules_by_collection.items()):
        seen = set()
        for value, tag in rules:
            value = (value or "").strip()
            if not value:
                raise RulesError(f"collection {name}: a stream rule has an empty value")
            if value in seen:
                raise RulesError(f"collection {name}: stream rule value {value!r} is configured twice")
            seen.add(value)
            names, _ = by_value.setdefault(value, ([], (tag or value).strip()))
            names.append(name)
    return [Rule(value, f"{tag_prefix}{'+'.join(names)}:{tag}") for value, (names, tag) in by_value.items()]


def collections_of(message: dict, tag_prefix: str = TAG_PREFIX) -> set[str]:
    """The collections named by the tags of ``message``'s ``matching_rules`` (none: an empty set)."""
    found: set[str] = set()
    for rule in message.get("matching_rules") or []:
        tag = str((rule or {}).get("tag") or "") if isinstance(rule, dict) else ""
        if tag.startswith(tag_prefix) and ":" in tag[len(tag_prefix) :]:
            found.update(n for n in tag[len(tag_prefix) :].split(":", 1)[0].split("+") if n)
    return found


class CollectionRouter:
    """A :class:`~tweet_assets.stream.segments.SegmentWriter` in front (``default``: the
    environment's ``raw_stream/``) and one per collection behind, with the writer interface the
    consumer uses (``append``, ``roll_due``, ``close``, ``recover``, health fields)."""

    def __init__(self, default, writers: dict, tag_prefix: str = TAG_PREFIX):
        self.default = default
        self.writers = writers
        self.tag_prefix = tag_prefix
        self.unrouted: dict[str, int] = {}  # collection tags without a writer here: counted, landed in default

    @property
    def lake(self):
        return self.default.lake

    @property
    def prefix(self) -> str:
        return self.default.prefix

    @property
    def spool_dir(self) -> str:
        return self.default.spool_dir

    @property
    def published(self) -> list[str]:
        return [k for w in self._all() for k in w.published]

    @property
    def unpublished(self) -> list:
        return [u for w in self._all() for u in w.unpublished]

    @property
    def newest_end_ms(self) -> int | None:
        ends = [w.newest_end_ms for w in self._all() if w.newest_end_ms]
        return max(ends) if ends else None

    def _all(self) -> list:
        return [self.default, *self.writers.values()]

    def append(self, day: str, line: bytes, received_ms: int) -> None:
        """Land ``line`` in each collection its matching rules name, or in ``default``."""
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            message = None
        names = collections_of(message, self.tag_prefix) if isinstance(message, dict) else set()
        targets = [self.writers[n] for n in sorted(names) if n in self.writers]
        for name in names - set(self.writers):
            self.unrouted[name] = self.unrouted.get(name, 0) + 1
        for writer in targets or [self.default]:
            writer.append(day, line, received_ms)

    def roll_due(self) -> list[str]:
        return [k for w in self._all() for k in w.roll_due()]

    def close(self) -> list[str]:
        return [k for w in self._all() for k in w.close()]

    def recover(self) -> list[str]:
        return [k for w in self._all() for k in w.recover()]
