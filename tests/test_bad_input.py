"""Bad input never crashes the flattener and is never lost: property-based mutations of real
recorded pages (hypothesis) must always give rows + quarantined + deduplicated == posts read.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tweet_assets.flatten import flatten_day
from tweet_assets.partitions import day_window

WINDOW = day_window("2021-06-26")


@pytest.fixture(scope="module")
def real_pages(x_api_v2):
    lines = (x_api_v2 / "twarc-network-test-data" / "tweets.jsonl").read_bytes().splitlines()
    pages = [json.loads(line) for line in lines[:2]]
    for page in pages:  # keep the pages small so each example is fast: 15 posts and their includes
        page["data"] = page["data"][:15]
    return pages


ODD_VALUES = st.sampled_from([None, 0, -1, 2**70, 1.5, "", "x", "12345", "2021-06-26T12:00:00.000Z", True, [], {}, ["a"], {"id": "1"}, "😀\u200b\u202e", "a" * 30000])
POST_KEYS = st.sampled_from(["id", "created_at", "text", "author_id", "public_metrics", "entities", "referenced_tweets", "attachments", "geo", "edit_history_tweet_ids", "edit_controls", "lang", "conversation_id", "note_tweet", "withheld"])


@st.composite
def mutation(draw):
    kind = draw(st.sampled_from(["set", "delete", "dup_post", "drop_includes", "outside", "id_number", "data_kind", "page_kind", "truncate", "bad_utf8", "extra_field", "errors_only"]))
    return kind, draw(st.integers(0, 14)), draw(POST_KEYS), draw(ODD_VALUES), draw(st.integers(1, 4000))


def apply(pages, mutations) -> list[bytes]:
    pages = copy.deepcopy(pages)
    raw_edits = {}
    for kind, index, key, value, cut in mutations:
        value = copy.deepcopy(value)  # ODD_VALUES' {} and [] are shared: a page must never hold itself
        page = pages[index % len(pages)]
        if not isinstance(page, dict):  # an earlier mutation made it a non-object
            page = {}
        posts = page.get("data") if isinstance(page.get("data"), list) else None
        post = posts[index % len(posts)] if posts else None
        if kind == "set" and isinstance(post, dict):
            post[key] = value
        elif kind == "delete" and isinstance(post, dict):
            post.pop(key, None)
        elif kind == "dup_post" and posts:
            posts.append(copy.deepcopy(posts[index % len(posts)]))
        elif kind == "drop_includes":
            page.pop("includes", None)
        elif kind == "outside" and isinstance(post, dict):
            post["created_at"] = "2021-06-27T00:00:00.000Z"
        elif kind == "id_number" and isinstance(post, dict) and str(post.get("id", "")).isdigit():
            post["id"] = int(post["id"])
        elif kind == "data_kind":
            page["data"] = value
        elif kind == "page_kind":
            pages[index % len(pages)] = value
        elif kind == "extra_field" and isinstance(post, dict):
            post[f"new_field_{cut}"] = {"nested": [value]}
        elif kind == "errors_only":
            pages[index % len(pages)] = {"errors": [{"title": "Not Found Error", "detail": "gone", "value": "1"}]}
        elif kind in ("truncate", "bad_utf8"):
            raw_edits[index % len(pages)] = (kind, cut)
    lines = []
    for i, page in enumerate(pages):
        line = json.dumps(page).encode()  # json, not orjson: it writes integers beyond 64 bits
        if i in raw_edits:
            kind, cut = raw_edits[i]
            line = line[: max(1, len(line) - cut)] if kind == "truncate" else line[:cut] + b"\xff\xfe" + line[cut:]
        lines.append(line)
    return lines


def posts_read(lines) -> tuple[int, int]:
    """(posts in pages that are readable JSON objects, unreadable lines): the ground truth."""
    posts = unreadable = 0
    for line in lines:
        try:
            page = json.loads(line.decode("utf-8", errors="replace"))
        except ValueError:
            unreadable += 1
            continue
        if not isinstance(page, dict):
            unreadable += 1
            continue
        data = page.get("data")
        posts += 1 if isinstance(data, dict) else len(data) if isinstance(data, list) else 0
    return posts, unreadable


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(mutation(), min_size=1, max_size=6))
def test_mutated_real_pages_rows_plus_quarantined_equals_posts(real_pages, mutations):
    lines = apply(real_pages, mutations)
    posts, unreadable = posts_read(lines)
    out = flatten_day(((f"p:{i + 1}", line) for i, line in enumerate(lines)), WINDOW)
    quarantined_posts = sum(1 for q in out.quarantined if "#" in q.location)
    quarantined_pages = sum(1 for q in out.quarantined if "#" not in q.location)
    assert quarantined_pages == unreadable
    assert out.stats["posts"] == posts
    assert out.frame.height + quarantined_posts + out.stats["duplicates"] + out.stats["superseded_edits"] == posts
    assert out.frame["id"].null_count() == 0 and out.frame["id"].n_unique() == out.frame.height
    for q in out.quarantined:
        assert q.reason and q.location


def test_a_raw_newline_inside_a_line_is_read_or_quarantined_never_split(real_pages):
    """A page pretty-printed on one line (raw newlines as JSON whitespace) is read like the compact
    page; a line holding two pages is quarantined as one bad line, not read as two rows."""
    from tweet_assets.pages import decode_pages

    compact = [json.dumps(page).encode() for page in real_pages]
    pretty = json.dumps(real_pages[0], indent=1).encode()
    assert pretty.count(b"\n") > 100 and pretty[:1] == b"{" and pretty[-1:] == b"}"
    two_in_one = compact[0] + b"\n" + compact[1]

    good = decode_pages(compact, ["a:1", "a:2"])
    mixed = decode_pages([pretty, compact[1]], ["b:1", "b:2"])
    assert mixed.table.equals(good.table)
    assert mixed.locations == ["b:1", "b:2"] and not mixed.quarantined

    bad = decode_pages([two_in_one, compact[1]], ["c:1", "c:2"])
    assert bad.table.num_rows == 1 and bad.locations == ["c:2"]
    assert [(q.location, q.reason) for q in bad.quarantined] == [("c:1", "invalid_json")]
