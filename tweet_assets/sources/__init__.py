"""Where response pages come from: one interface (``base.PostSource``), one file per source."""

from tweet_assets.sources.base import PostSource, SourcePage
from tweet_assets.sources.replay import ReplaySource
from tweet_assets.sources.sample import SampleSource

__all__ = ["PostSource", "SourcePage", "ReplaySource", "SampleSource"]
