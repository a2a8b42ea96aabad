"""The lake's storage: a local directory or an S3 prefix, behind one small interface.

Writes are whole-object and atomic: a local file is written to a temporary name and renamed; an S3
object is written by one ``PutObject`` or one multipart upload (boto3's ``upload_file``), which
becomes visible only when complete. So a reader never sees half an object at a published key.

What a failed or killed write can leave behind: a local ``.tmp-*.part`` file beside the target,
or an incomplete S3 multipart upload (invisible, but billed). A failed upload is aborted at once
(``AbortMultipartUpload``); :meth:`Lake.remove_stale_temporaries` removes what a killed process
left at the keys a rerun writes again; and an ``AbortIncompleteMultipartUpload`` lifecycle rule on
the bucket (README, "Point at S3") is the backstop for uploads nobody reruns.

Every storage failure is raised as :class:`LakeError` naming the bucket, key and endpoint and saying
what to check; credentials are never part of a message.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from typing import IO, Iterable, Iterator
from urllib.parse import urlparse


#: The write check's object (:meth:`Lake.check_writable`), beside the tables, and its bytes.
CHECK_KEY = "_tweet_assets_check/write-check"
CHECK_BODY = b"tweet_assets write check: raw_tweets writes this before reading its source\n"


class LakeError(RuntimeError):
    """A storage operation failed; the message says where (URI, endpoint) and what to check."""


class PreconditionFailed(LakeError):
    """A conditional write lost: the object at the key exists (``If-None-Match: *``) or is no
    longer the version read (``If-Match`` on its ETag). S3 answers 412 PreconditionFailed, or
    409 ConditionalRequestConflict while another conditional write to the key is in flight (S3
    User Guide, "Add preconditions to S3 operations with conditional requests"). Read again and retry."""


def refuse_control_characters(what: str, value: str) -> str:
    """``value`` unchanged, or :class:`LakeError` when it holds a control character (C0, DEL or
    C1: a newline in ``s3://b/pre\\nfix`` would silently name another prefix)."""
    bad = [c for c in value if ord(c) < 32 or 127 <= ord(c) < 160]
    if bad:
        raise LakeError(f"{what} {value!r} holds control character(s) {sorted({hex(ord(c)) for c in bad})}: remove them (check TWEET_ASSETS_LAKE_URL for a pasted newline).")
    return value


class Lake:
    """Base interface. Keys are ``/``-separated paths relative to the lake's base."""

    url: str

    def uri(self, key: str) -> str:
        """The full URI (``s3://bucket/prefix/key`` or an absolute local path) of ``key``."""
        raise NotImplementedError

    def put_file(self, key: str, path: str) -> int:
        """Store the local file ``path`` at ``key``, replacing any object there; returns bytes."""
        raise NotImplementedError

    def put_bytes(self, key: str, data: bytes) -> int:
        """Store ``data`` at ``key`` in one write, replacing any object there; returns bytes."""
        raise NotImplementedError

    def open(self, key: str) -> IO[bytes]:
        """A readable binary stream of the object (caller closes it).

        Raises:
            LakeError: the object does not exist or cannot be read.
        """
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None if there is no object at ``key``."""
        raise NotImplementedError

    def read_tail(self, key: str, nbytes: int) -> bytes:
        """The object's last ``nbytes`` bytes (all of it if shorter): one ranged read.

        Raises:
            LakeError: the object does not exist or cannot be read.
        """
        raise NotImplementedError

    def copy(self, source_key: str, key: str) -> int:
        """Copy the object at ``source_key`` to ``key`` (replacing it) without passing its bytes
        through this process where the store can copy by itself; returns bytes."""
        raise NotImplementedError

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, sorted."""
        raise NotImplementedError

    # --- conditional writes (S3 PutObject If-None-Match / If-Match; a local lake emulates them)
    def etag(self, key: str) -> str | None:
        """The object's ETag (quoted, as S3 gives it), or None if there is no object at ``key``."""
        raise NotImplementedError

    def read_with_etag(self, key: str) -> tuple[bytes | None, str | None]:
        """``(bytes, ETag)`` of the object read in one request, or ``(None, None)`` if absent."""
        raise NotImplementedError

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create the object at ``key`` only if there is none (``If-None-Match: *``); returns its ETag.

        Raises:
            PreconditionFailed: an object exists at ``key``.
        """
        return self._put_conditional(key, data, None)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace the object at ``key`` only if its ETag is still ``etag`` (``If-Match``); returns the new ETag.

        Raises:
            PreconditionFailed: the object changed (or was removed) since ``etag`` was read.
        """
        return self._put_conditional(key, data, etag)

    def put_file_if_match(self, key: str, path: str, etag: str | None) -> str:
        """Store the local file ``path`` at ``key`` only if the object there is still ``etag``
        (None: only if there is no object); one PutObject (S3 limit: 5 GB). Returns the new ETag.

        Raises:
            PreconditionFailed: the object changed since ``etag`` was read.
        """
        raise NotImplementedError

    def _put_conditional(self, key: str, data: bytes, etag: str | None) -> str:
        raise NotImplementedError

    def check_writable(self) -> str:
        """Write the tiny object ``_tweet_assets_check/write-check`` (the same bytes each time,
        overwriting the last check's): proves, before any work, that the location exists and
        takes writes. Returns its key. On S3 it stays (one ~25-byte object: the pipeline never
        deletes: IAM grants no object deletion); a local lake removes it again.

        Raises:
            LakeError: the bucket or directory is missing, or the write is refused (the message
                names bucket, key and endpoint, as for any write).
        """
        self.put_bytes(CHECK_KEY, CHECK_BODY)
        return CHECK_KEY

    def remove_stale_temporaries(self, keys: Iterable[str], before: float) -> int:
        """Remove what earlier, killed writes to ``keys`` left behind (local ``.tmp-*.part``
        files, S3 incomplete multipart uploads) that started before ``before`` (Unix seconds);
        returns how many. Writes of other keys, and newer ones, are left alone."""
        return 0


#: A local write goes to ``<folder>/.tmp-XXXX.part`` first, then is renamed over the target.
TMP_PREFIX, TMP_SUFFIX = ".tmp-", ".part"
#: The local lake's lock files for conditional writes (one per key, never listed as objects).
LOCK_DIR = ".tweet_assets-locks"


def _md5_etag(handle) -> str:
    digest = hashlib.md5()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return f'"{digest.hexdigest()}"'


class LocalLake(Lake):
    """A directory on this machine (the embedded default)."""

    def __init__(self, root: str):
        refuse_control_characters("lake directory", root)
        self.root = os.path.abspath(os.path.expanduser(root))
        self.url = self.root

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def uri(self, key: str) -> str:
        return self._path(key)

    def _atomic(self, key: str, write) -> int:
        target = self._path(key)
        tmp = None
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=TMP_PREFIX, suffix=TMP_SUFFIX)
            with os.fdopen(fd, "wb") as out:
                write(out)
            os.replace(tmp, target)
            tmp = None
        except OSError as exc:
            raise LakeError(f"cannot write {target}: {exc}. Check that the lake directory is writable.") from exc
        finally:
            if tmp is not None:  # the write failed: no temporary left beside the target
                try:
                    os.remove(tmp)
                except OSError:
                    pass
        return os.path.getsize(target)

    def remove_stale_temporaries(self, keys: Iterable[str], before: float) -> int:
        removed = 0
        for folder in sorted({os.path.dirname(self._path(key)) for key in keys}):
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                path = os.path.join(folder, name)
                if not (name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX)):
                    continue
                try:
                    if os.stat(path).st_mtime < before:
                        os.remove(path)
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def put_file(self, key: str, path: str) -> int:
        def copy(out):
            with open(path, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)

        return self._atomic(key, copy)

    # conditional writes: an exclusive flock per key (POSIX advisory lock on
    # <root>/.tweet_assets-locks/<first 2 hex of sha1 of key>.lock, 256 files at most, taken by every conditional writer, threads and
    # processes alike) around "compare the content hash, then write and rename"
    @contextlib.contextmanager
    def _key_lock(self, key: str):
        folder = os.path.join(self.root, LOCK_DIR)
        os.makedirs(folder, exist_ok=True)
        fd = os.open(os.path.join(folder, hashlib.sha1(key.encode()).hexdigest()[:2] + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def etag(self, key: str) -> str | None:
        """The MD5 of the file's bytes, quoted (S3's ETag of a single-part object), or None."""
        try:
            with open(self._path(key), "rb") as handle:
                return _md5_etag(handle)
        except FileNotFoundError:
            return None

    def read_with_etag(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            with open(self._path(key), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None, None
        return data, f'"{hashlib.md5(data).hexdigest()}"'

    def _check(self, key: str, etag: str | None) -> None:
        current = self.etag(key)
        if current != etag:
            said = "exists" if etag is None else ("is gone" if current is None else f"is {current}, not {etag}")
            raise PreconditionFailed(f"conditional write to {self._path(key)} refused: the object {said} (another writer changed it since it was read).")

    def _put_conditional(self, key: str, data: bytes, etag: str | None) -> str:
        with self._key_lock(key):
            self._check(key, etag)
            self.put_bytes(key, data)
        return f'"{hashlib.md5(data).hexdigest()}"'

    def put_file_if_match(self, key: str, path: str, etag: str | None) -> str:
        with self._key_lock(key):
            self._check(key, etag)
            self.put_file(key, path)
            return self.etag(key)

    def put_bytes(self, key: str, data: bytes) -> int:
        return self._atomic(key, lambda out: out.write(data))

    def open(self, key: str) -> IO[bytes]:
        path = self._path(key)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise LakeError(f"no object at {path}: materialize the upstream asset for this partition first.") from None

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return os.path.getsize(path) if os.path.isfile(path) else None

    def read_tail(self, key: str, nbytes: int) -> bytes:
        with self.open(key) as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - nbytes))
            return handle.read()

    def copy(self, source_key: str, key: str) -> int:
        source = self._path(source_key)
        if not os.path.isfile(source):
            raise LakeError(f"no object at {source}: materialize the upstream asset for this partition first.")
        return self.put_file(key, source)

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        found = []
        for dirpath, dirs, names in os.walk(base):
            dirs[:] = [d for d in dirs if d != LOCK_DIR]
            for name in names:
                if not name.startswith(TMP_PREFIX):
                    rel = os.path.relpath(os.path.join(dirpath, name), self.root)
                    found.append(rel.replace(os.sep, "/"))
        return iter(sorted(found))

    def check_writable(self) -> str:
        key = super().check_writable()
        path = self._path(key)
        try:  # a local lake keeps nothing of the check
            os.remove(path)
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass
        return key


class S3Lake(Lake):
    """``s3://bucket/prefix`` through a boto3 S3 client (from dagster-aws's ``S3Resource``)."""

    def __init__(self, url: str, client, endpoint: str | None = None):
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise LakeError(f"lake URL {url!r} is not s3://bucket[/prefix]")
        refuse_control_characters("lake URL", url)
        self.url = url.rstrip("/")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.client = client
        self.endpoint = endpoint or getattr(getattr(client, "meta", None), "endpoint_url", None) or "AWS default"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _fail(self, action: str, key: str, exc: Exception) -> LakeError:
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        where = f"{action} s3://{self.bucket}/{self._key(key)} (endpoint {self.endpoint})"
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "?")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            hint = {
                "NoSuchBucket": f"bucket {self.bucket!r} does not exist: create it, or fix TWEET_ASSETS_LAKE_URL",
                "AccessDenied": "access denied: check the IAM policy (deploy/iam/policy.json) covers this bucket and prefix",
                "403": "access denied, or no object there (S3 answers 403 for a missing key when listing is limited to prefixes): check the IAM policy, and that the upstream partition was materialized",
                "InvalidAccessKeyId": "the AWS access key is not valid: check the credentials in the environment or instance profile",
                "SignatureDoesNotMatch": "the AWS secret key does not match: check the credentials",
                "NoSuchKey": "no object there: materialize the upstream asset for this partition first",
                "404": "no object there: materialize the upstream asset for this partition first",
            }.get(code, "see the error code")
            return LakeError(f"{where} failed: {code} (HTTP {status}); {hint}.")
        if isinstance(exc, EndpointConnectionError):
            return LakeError(f"{where} failed: cannot reach the endpoint; check AWS_ENDPOINT_URL / the network.")
        if isinstance(exc, NoCredentialsError):
            return LakeError(f"{where} failed: no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use an instance profile.")
        return LakeError(f"{where} failed: {type(exc).__name__}: {exc}")

    def put_file(self, key: str, path: str) -> int:
        try:
            self.client.upload_file(path, self.bucket, self._key(key))
        except Exception as exc:  # boto3 wraps ClientError in S3UploadFailedError
            raise self._fail("upload to", key, getattr(exc, "__cause__", None) or exc) from exc
        return os.path.getsize(path)

    def put_bytes(self, key: str, data: bytes) -> int:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise self._fail("put", key, exc) from exc
        return len(data)

    def _head(self, key: str) -> dict | None:
        """HeadObject's answer for ``key``, or None if there is no object (HeadObject answers 404 with
        no body: botocore's code "404"; S3-compatible stores say NoSuchKey or NotFound)."""
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail("head", key, exc) from exc
        except Exception as exc:
            raise self._fail("head", key, exc) from exc

    def etag(self, key: str) -> str | None:
        head = self._head(key)
        return None if head is None else head["ETag"]

    def read_with_etag(self, key: str) -> tuple[bytes | None, str | None]:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read(), response["ETag"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None, None
            raise self._fail("get", key, exc) from exc
        except Exception as exc:
            raise self._fail("get", key, exc) from exc

    def _conditional(self, key: str, body, etag: str | None) -> str:
        """One PutObject with ``IfNoneMatch="*"`` (``etag`` None) or ``IfMatch=etag`` (S3 API
        Reference, PutObject: 412 PreconditionFailed when the condition fails, 409
        ConditionalRequestConflict when a concurrent conditional write to the key wins)."""
        from botocore.exceptions import ClientError

        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, **condition)["ETag"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                said = "exists" if etag is None else f"is no longer {etag}"
                raise PreconditionFailed(f"conditional write to {self.uri(key)} refused ({code}): the object {said} (another writer changed it since it was read).") from exc
            raise self._fail("put", key, exc) from exc
        except Exception as exc:
            raise self._fail("put", key, exc) from exc

    def _put_conditional(self, key: str, data: bytes, etag: str | None) -> str:
        return self._conditional(key, data, etag)

    def put_file_if_match(self, key: str, path: str, etag: str | None) -> str:
        with open(path, "rb") as body:
            return self._conditional(key, body, etag)

    def open(self, key: str) -> IO[bytes]:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:
            raise self._fail("get", key, exc) from exc

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else head["ContentLength"]

    def read_tail(self, key: str, nbytes: int) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=f"bytes=-{nbytes}")
            return response["Body"].read()
        except Exception as exc:
            raise self._fail("get the end of", key, exc) from exc

    def copy(self, source_key: str, key: str) -> int:
        # boto3's managed copy: server-side CopyObject, multipart above its threshold (objects > 5 GB)
        try:
            self.client.copy({"Bucket": self.bucket, "Key": self._key(source_key)}, self.bucket, self._key(key))
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except Exception as exc:
            raise self._fail(f"copy s3://{self.bucket}/{self._key(source_key)} to", key, exc) from exc

    def list(self, prefix: str) -> Iterator[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except Exception as exc:
            raise self._fail("list", prefix, exc) from exc
        return iter(sorted(keys))

    def incomplete_uploads(self, prefix: str) -> list[dict]:
        """The incomplete multipart uploads under ``prefix``: ``[{"Key", "UploadId", "Initiated"}]``
        with keys relative to the lake (``ListMultipartUploads``; IAM ``s3:ListBucketMultipartUploads``).

        Raises:
            LakeError: the listing failed (names bucket, prefix and endpoint).
        """
        strip = len(self.prefix) + 1 if self.prefix else 0
        found = []
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for upload in page.get("Uploads", []):
                    found.append({"Key": upload["Key"][strip:], "UploadId": upload["UploadId"], "Initiated": upload["Initiated"]})
        except Exception as exc:
            raise self._fail("list the incomplete multipart uploads under", prefix, exc) from exc
        return found

    def remove_stale_temporaries(self, keys: Iterable[str], before: float) -> int:
        """Aborts the incomplete multipart uploads to ``keys`` initiated before ``before``: one
        listing per common folder of ``keys`` (the run's table), one ``AbortMultipartUpload`` each."""
        keys = set(keys)
        if not keys:
            return 0
        folder = os.path.commonprefix(sorted(keys)).rsplit("/", 1)[0]
        removed = 0
        for upload in self.incomplete_uploads(folder):
            if upload["Key"] in keys and upload["Initiated"].timestamp() < before:
                self._abort(upload["Key"], upload["UploadId"])
                removed += 1
        return removed

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
        except Exception as exc:
            raise self._fail("abort the multipart upload to", key, exc) from exc


def open_lake(url: str, s3_client_factory=None, endpoint: str | None = None) -> Lake:
    """A :class:`Lake` for ``url``: ``s3://bucket/prefix`` (needs ``s3_client_factory()``, a boto3
    S3 client factory) or a local directory path.
    """
    refuse_control_characters("lake URL", url)
    if url.startswith("s3://"):
        if s3_client_factory is None:
            raise LakeError("an s3:// lake needs an S3 client (dagster-aws S3Resource)")
        return S3Lake(url, s3_client_factory(), endpoint)
    if "://" in url and not url.startswith("file://"):
        raise LakeError(f"lake URL {url!r}: use s3://bucket/prefix or a local directory")
    return LocalLake(url[len("file://") :] if url.startswith("file://") else url)
