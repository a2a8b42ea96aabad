"""The one X API v2 layer: field and expansion lists, the HTTP session (timeouts, redaction), the
retry and rate-limit policy, problem parsing and ``__twarc`` provenance. Search, stream and
compliance all talk to X through it (being moved here from ``tweet_assets/sources/x_api.py``)."""
