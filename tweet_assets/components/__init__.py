"""Dagster components of this project: :class:`TweetCollection`, one collection per
``tweet_assets/defs/<collection>/defs.yaml`` (``dg scaffold defs tweet_assets.TweetCollection <name>``)."""

from tweet_assets.components.collection import TweetCollection

__all__ = ["TweetCollection"]
