"""``python -m tweet_assets.cli COMMAND``: the same as the ``tweet-assets`` command."""

import sys

from tweet_assets.cli.main import main

sys.exit(main())
