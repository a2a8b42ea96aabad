"""Batch compliance (X API v2): which stored posts were since deleted, made protected, suspended
or withheld, a ledger of them in the lake, and their removal from every zone of the lake.

The X Developer Agreement requires removing such posts. Three modules, one step each:

- :mod:`.api`: the batch compliance endpoints (create, upload, poll, download);
- :mod:`.ledger`: the ledger of affected ids in the lake (ids only, never content);
- :mod:`.rewrite`: what is submitted and the removal of the ledger's posts, day by day.
"""
