"""Where response pages come from: one interface (``base.PostSource``), one file per source."""

from .base import PostSource, SourcePage
from .replay import ReplaySource
from .sample import SampleSource

__all__ = ["PostSource", "SourcePage", "ReplaySource", "SampleSource"]
