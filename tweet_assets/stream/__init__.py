"""The filtered-stream consumer: knows nothing of Dagster.

- :mod:`.reconnect`: X's documented reconnection schedule (pure);
- :mod:`.rules`: rules as configuration, synced with ``dry_run`` first (tweepy);
- :mod:`.segments`: the spool and the segments published to the lake (the durability promise);
- :mod:`.consumer`: the HTTP connection and its loop;
- :mod:`.service`: settings from the environment, signals: what ``tweet-assets stream`` runs.

``tweet_assets.sources.stream`` is the Dagster side (days closed from the landed segments).
"""
