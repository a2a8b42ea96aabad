"""The one X API v2 layer; search (:mod:`tweet_assets.sources.x_api`), the filtered stream
(:mod:`tweet_assets.stream`) and batch compliance (:mod:`tweet_assets.compliance.api`) talk to X
through it, by public names only:

- :mod:`.fields`: field and expansion lists of both spec vocabularies (2.159 ``tweets``, 2.167 ``posts``);
- :mod:`.session`: the HTTP session (host, ``(connect, read)`` timeouts, secret redaction incl.
  tweepy's debug log), tweepy clients, signed-URL transfers; the only importer of tweepy/requests;
- :mod:`.retry`: retry and rate-limit policy as tenacity decorators;
- :mod:`.problems`: the API's problem JSON, described in one line; :class:`~.problems.XApiError`;
- :mod:`.provenance`: twarc2's ``__twarc`` record appended to each landed page.
"""
