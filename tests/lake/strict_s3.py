"""moto 5.2 as strict as S3 on the conditions fencing relies on.

moto honours ``If-Match``/``If-None-Match`` on PutObject and ``If-None-Match: *`` on
CompleteMultipartUpload, but ignores ``If-Match`` on CompleteMultipartUpload and
``x-amz-copy-source-if-match`` on UploadPartCopy (moto/s3/responses.py 5.2.6), which S3 documents
(API Reference: CompleteMultipartUpload "If-Match ... 412 Precondition Failed"; UploadPartCopy
"x-amz-copy-source-if-match ... Copies the object if its entity tag (ETag) matches"). The moto
server of the tests runs in the tests' process (tests/conftest.py ``moto_server``), so patching its
response class makes it answer as S3 does. The request shapes are checked against botocore's model
with Stubber in tests/lake/test_fencing.py; this only makes moto judge them.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

import pytest


def _same(a: str, b: str) -> bool:
    return a.strip('"') == b.strip('"')


@pytest.fixture
def strict_s3(monkeypatch):
    from moto.s3.exceptions import MissingKey, PreconditionFailed
    from moto.s3.responses import S3Response

    complete = S3Response._key_response_post
    copy_part = S3Response.upload_part_copy

    def _key_response_post(self, request, body, bucket_name, query, key_name):
        wanted = request.headers.get("If-Match")
        if query.get("uploadId") and wanted:
            existing = self.backend.get_object(bucket_name, key_name)
            if existing is None:
                raise MissingKey(key=key_name)
            if not _same(existing.etag, wanted):
                raise PreconditionFailed("If-Match")
        return complete(self, request, body, bucket_name, query, key_name)

    def upload_part_copy(self):
        wanted = self.headers.get("x-amz-copy-source-if-match")
        if wanted:
            source = self.headers.get("x-amz-copy-source")
            source = source.decode() if isinstance(source, bytes) else source
            bucket, key = unquote(urlparse(source).path).lstrip("/").split("/", 1)
            existing = self.backend.get_object(bucket, key)
            if existing is None or not _same(existing.etag, wanted):
                raise PreconditionFailed("x-amz-copy-source-If-Match")
        return copy_part(self)

    monkeypatch.setattr(S3Response, "_key_response_post", _key_response_post)
    monkeypatch.setattr(S3Response, "upload_part_copy", upload_part_copy)
