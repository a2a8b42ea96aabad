"""The tolerant reader: a page the fast decoders reject (pyarrow's bulk reader, orjson), read to the post.

Real archives hold pages that are valid JSON (RFC 8259) but that orjson refuses: a ``text`` with a
lone surrogate escape (``"\\ud83d"``, from a text cut inside an emoji), a reversed surrogate pair,
a raw control character inside a string, an unknown field nested deeper than orjson's 1,024 levels.
Quarantining the page for one such post loses its other posts. Here:

1. the page is read with Python's ``json`` (``strict=False``: raw control characters are taken as
   they are); lone surrogates (RFC 8259 section 8.2: "unpaired surrogates", which JSON allows and
   UTF-8 cannot encode) are replaced by U+FFFD and counted;
2. when that fails too (a syntax error inside one post, nesting beyond Python's recursion limit),
   the page is cut into its top-level members and its ``data`` items by a scanner that follows
   only strings and brackets inside a member (the members themselves must be well-formed); each
   member and each item is read on its own (an item by ``json``, then by pyarrow's reader with the
   Post schema, which skips unknown fields at any depth). A member other than ``data`` that cannot
   be read makes the page unreadable (its posts' expansions would be lost). An item that
   none of them reads becomes an :data:`UNREADABLE` placeholder: the rest of the page is read,
   the placeholder is quarantined by ``clean_tweets`` as ``unreadable_post`` at its index, and its
   text is kept in the placeholder (``__unreadable``) so nothing is lost;
3. a page whose brackets do not close (a cut-short line) or that is not an object is unreadable
   as a whole; :attr:`TolerantPage.data_items` then says how many ``data`` items the scanner found
   (items begun before the cut count), or None when it found no ``data`` array ("unknown").

This is per-character Python work: it runs only for pages the fast decoders refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

#: How the ``id`` of the placeholder that stands for an unreadable ``data`` item starts.
UNREADABLE = "<unreadable post>"
_SURROGATE = re.compile("[\ud800-\udfff]")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.S)


@dataclass
class TolerantPage:
    """What :func:`read_page` made of one line.

    Attributes:
        page: the page (``data`` a list, a stream message's object wrapped), or None when unreadable.
        unreadable: ``(index in data, why)`` of each item replaced by a placeholder.
        surrogates: lone surrogates replaced by U+FFFD.
        data_items: items in ``data`` (placeholders included); for an unreadable page, items the
            scanner found, or None (unknown).
        error: why the page as a whole is unreadable, or None.
    """

    page: dict | None = None
    unreadable: list = field(default_factory=list)
    surrogates: int = 0
    data_items: int | None = None
    error: str | None = None


def read_page(line: bytes, post_type=None) -> TolerantPage:
    """Read one JSON-lines page tolerantly (see the module docstring); never raises for bad input.
    Invalid UTF-8 is read with U+FFFD replacement characters (the caller counts those).
    ``post_type``: the Arrow struct of a post (``pages.TWEET``) for pyarrow's reading of an item
    ``json`` cannot read; None skips that step."""
    text = line.decode("utf-8", errors="replace")
    try:
        value = json.loads(text, strict=False)
    except (ValueError, RecursionError) as exc:
        return _read_by_parts(text, f"{type(exc).__name__}: {exc}", post_type)
    if not isinstance(value, dict):
        return TolerantPage(error=f"a JSON {type(value).__name__}, not a page object")
    return _finish(TolerantPage(page=value))


def _finish(result: TolerantPage) -> TolerantPage:
    page = result.page
    if isinstance(page.get("data"), dict):
        page["data"] = [page["data"]]
    result.surrogates += _replace_surrogates(page)
    if isinstance(page.get("data"), list):
        result.data_items = len(page["data"])
    return result


def _replace_surrogates(value) -> int:
    """Replace lone surrogates in every string (keys included) of ``value`` in place; return how many."""
    count = 0
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                item = node[key]
                if isinstance(key, str) and _SURROGATE.search(key):
                    new_key, n = _SURROGATE.subn("\ufffd", key)
                    count += n
                    del node[key]
                    node[new_key] = item
                    key = new_key
                if isinstance(item, str):
                    if _SURROGATE.search(item):
                        node[key], n = _SURROGATE.subn("\ufffd", item)
                        count += n
                elif isinstance(item, (dict, list)):
                    stack.append(item)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    if _SURROGATE.search(item):
                        node[i], n = _SURROGATE.subn("\ufffd", item)
                        count += n
                elif isinstance(item, (dict, list)):
                    stack.append(item)
    return count


def _scan(text: str):
    """Top-level members of the object in ``text``: ``(members, data_items, closed, data_object)``
    where ``members`` is ``[(key, value start, value end)]``, ``data_items`` the ``[(start, end)]``
    of each item of a ``data`` array (None when there is no such array), ``closed`` whether the
    object is whole (its members well-formed, nothing but whitespace after it), ``data_object``
    whether ``data`` is one object (a stream message's post). Inside a member's value only strings
    and brackets are followed, so a syntax error inside one post does not stop the scan; anything
    wrong between the members makes the page unreadable (``closed`` False)."""
    members = []
    items = None
    depth = 0
    key = None
    value_start = None
    state = "start"  # at depth 1: key, colon, value (a scalar may lie in the gap), after (a value read)
    last = 0  # end of the previous token
    in_data = False
    item_start = None
    data_object = False

    def broken():
        return members, items, False, data_object

    for match in _TOKEN.finditer(text):
        token = match.group()
        at = match.start()
        gap = text[last:at].strip()
        last = match.end()
        if state == "start":
            if token != "{" or gap:
                return [], None, False, False
            depth, state = 1, "key"
            continue
        if depth >= 2:
            if token in "[{":
                depth += 1
            elif token in "]}":
                depth -= 1
                if in_data and depth == 2 - 1:
                    if text[item_start:at].strip():
                        items.append((item_start, at))
                    in_data = False
                if depth == 1:
                    state = "after"
            elif token == "," and in_data and depth == 2:
                items.append((item_start, at))
                item_start = match.end()
            continue
        # depth 1: the page's members
        if state == "key":
            if gap:
                return broken()
            if token == "}" and not members:
                return members, items, text[last:].strip() == "", data_object
            if not token.startswith('"'):
                return broken()
            try:
                key = json.loads(token, strict=False)
            except ValueError:
                return broken()
            state = "colon"
        elif state == "colon":
            if gap or token != ":":
                return broken()
            value_start, state = match.end(), "value"
        elif state == "value":
            if token in "[{":
                if gap:
                    return broken()
                depth += 1
                if token == "[" and key == "data":
                    in_data, items, item_start = True, [], match.end()
                elif token == "{" and key == "data":
                    data_object = True
            elif token.startswith('"'):
                if gap:
                    return broken()
                state = "after"
            elif token in ",}" and gap:  # a scalar value: it is the gap
                members.append((key, value_start, at))
                if token == "}":
                    return members, items, text[last:].strip() == "", data_object
                state = "key"
            else:
                return broken()
        elif state == "after":
            if gap or token not in ",}":
                return broken()
            members.append((key, value_start, at))
            if token == "}":
                return members, items, text[last:].strip() == "", data_object
            state = "key"
    if in_data and item_start is not None and text[item_start:].strip():
        items.append((item_start, len(text)))  # an item cut short
    return broken()


def _read_item(text: str, post_type=None):
    """One ``data`` item: (value, None) or (None, why)."""
    try:
        return json.loads(text, strict=False), None
    except (ValueError, RecursionError) as exc:
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
    if post_type is None:
        return None, why
    import pyarrow as pa
    import pyarrow.json as pa_json

    try:  # pyarrow's reader skips unknown fields whatever their depth
        table = pa_json.read_json(
            pa.BufferReader(text.encode("utf-8", "surrogatepass").replace(b"\n", b" ")),
            parse_options=pa_json.ParseOptions(explicit_schema=pa.schema(list(post_type)), unexpected_field_behavior="ignore"),
        )
        if table.num_rows == 1:
            table.validate(full=True)
            return {k: v for k, v in table.to_pylist()[0].items() if v is not None}, None
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError) as exc:
        why += f"; pyarrow: {str(exc)[:200]}"
    return None, why


def _placeholder(why: str, text: str) -> dict:
    """What stands for an unreadable item in ``data``: ``id`` is :data:`UNREADABLE` and why (shown
    in the quarantine record), ``__unreadable`` the item's text as received."""
    return {"id": f"{UNREADABLE} {why}", "__unreadable": text}


def _read_by_parts(text: str, error: str, post_type=None) -> TolerantPage:
    members, items, closed, data_object = _scan(text)
    if not closed:
        return TolerantPage(data_items=len(items) if items is not None else 1 if data_object else None, error=error)
    result = TolerantPage(page={})
    for key, start, end in members:
        if key == "data" and items is None and text[start:end].strip()[:1] == "{":  # a stream message's one post
            value, why = _read_item(text[start:end], post_type)
            if why is not None:
                result.unreadable.append((0, why))
                value = _placeholder(why, text[start:end])
            result.page["data"] = [value]
            continue
        if key == "data" and items is not None:
            data = []
            for index, (a, b) in enumerate(items):
                value, why = _read_item(text[a:b], post_type)
                if why is not None:
                    result.unreadable.append((index, why))
                    value = _placeholder(why, text[a:b])
                data.append(value)
            result.page["data"] = data
            continue
        try:
            result.page[key] = json.loads(text[start:end], strict=False)
        except (ValueError, RecursionError) as exc:  # only a post is given up, never the page's includes or meta
            return TolerantPage(data_items=len(items) if items is not None else 1 if data_object else None, error=f"{error}; its {key!r} is unreadable too ({type(exc).__name__})")
    return _finish(result)
