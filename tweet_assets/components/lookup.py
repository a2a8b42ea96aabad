"""A collection by name, for the CLI (``tweet-assets demo|replay|ddl --collection NAME``): its YAML
under ``tweet_assets/defs/*/defs.yaml``, and a job of it that runs in process."""

from __future__ import annotations

from pathlib import Path

import yaml

DEFS = Path(__file__).resolve().parent.parent / "defs"
TYPE = "tweet_assets.TweetCollection"


def collection_yamls(defs: Path | None = None) -> dict[str, Path]:
    """``{collection name: its defs.yaml}`` of every ``TweetCollection`` under ``defs``."""
    defs = defs or DEFS
    found = {}
    for path in sorted(defs.glob("*/defs.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("type") == TYPE:
                found[str((document.get("attributes") or {}).get("name"))] = path
    return found


def find_collection(name: str, defs: Path | None = None):
    """The :class:`TweetCollection` named ``name``.

    Raises:
        LookupError: no such collection (the message lists the ones there are).
    """
    from tweet_assets.components.collection import TweetCollection

    defs = defs or DEFS
    yamls = collection_yamls(defs)
    if name not in yamls:
        known = ", ".join(sorted(yamls)) or "none"
        raise LookupError(f"no collection {name!r} under {defs} (collections: {known}); `dg scaffold defs tweet_assets.TweetCollection {name}` writes one")
    for document in yaml.safe_load_all(yamls[name].read_text()):
        if isinstance(document, dict) and document.get("type") == TYPE and (document.get("attributes") or {}).get("name") == name:
            return TweetCollection.from_attributes_dict(attributes=document["attributes"])
    raise LookupError(name)  # unreachable: collection_yamls found it


def collection_job(name: str, replay_path: str | None = None, defs: Path | None = None):
    """``(<name>_daily_job, the collection)`` with the environment's lake, IO manager and compliance
    resources; ``replay_path``: the collection's source replaced by a replay of that archive (its
    keys, lake folder and start date kept)."""
    from dagster import Definitions

    from tweet_assets.components.collection import ReplaySettings, TweetCollection
    from tweet_assets.components.factory import collection_defs
    from tweet_assets.defs.pipeline.layout import PipelineLayout
    from tweet_assets.settings import lake_from_env
    from tweet_assets.lake.io_manager import LakeIOManager

    collection = find_collection(name, defs)
    if replay_path:
        collection = TweetCollection(name=collection.name, replay=ReplaySettings(path=replay_path), start_date=collection.start_date, schedule=collection.schedule, table=collection.table)
    lake = lake_from_env()
    code = Definitions.merge(Definitions(resources={"lake": lake, "io_manager": LakeIOManager(location=lake)}), collection_defs(collection))
    return code.resolve_job_def(PipelineLayout(name=name).job_name), collection
