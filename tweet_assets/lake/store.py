"""The lake's storage: a local directory or an S3 prefix, behind one small interface.

Writes are whole-object and atomic: a local file is written to a temporary name and renamed; an S3
object is written by one ``PutObject`` or one multipart upload (boto3's ``upload_file`` for the
unconditional writes, this module's own for the fenced ones below), which becomes visible only when
complete. So a reader never sees half an object at a published key.

What a failed or killed write can leave behind: a local ``.tmp-*.part`` file beside the target,
or an incomplete S3 multipart upload (invisible, but billed). A failed upload is aborted at once
(``AbortMultipartUpload``); :meth:`Lake.remove_stale_temporaries` removes what a killed process
left at the keys a rerun writes again; and an ``AbortIncompleteMultipartUpload`` lifecycle rule on
the bucket (README, "Point at S3") is the backstop for uploads nobody reruns.

Every storage failure is raised as :class:`LakeError` naming the bucket, key and endpoint and saying
what to check; credentials are never part of a message.

Fencing (docs/concurrency.md): a day's data objects are written with :meth:`Lake.write_file`,
:meth:`Lake.write_bytes` and :meth:`Lake.copy_version`, each conditional on the version the writer
expects (``If-None-Match: *`` for an absent object, ``If-Match: <ETag>`` for one it replaces) and
carrying the writer's run id (S3 user metadata ``x-amz-meta-run-id``). The S3 operations that take
a write condition (botocore 1.44's service model, S3 API Reference): **PutObject** (``If-Match``,
``If-None-Match``), **CompleteMultipartUpload** (``If-Match``, ``If-None-Match``), **CopyObject**
(``If-Match``, ``If-None-Match`` in the model since 2025, but a 501 under a bucket policy that enforces
conditional writes per the User Guide, and absent from S3-compatible stores' lists: not relied on),
**DeleteObject** (``If-Match``; never called). CreateMultipartUpload, UploadPart and UploadPartCopy
take none (UploadPartCopy only ``x-amz-copy-source-if-match`` on its source). So a large object is a
multipart upload whose CompleteMultipartUpload carries the condition, and a copy is UploadPartCopy
(source pinned by ``x-amz-copy-source-if-match``) inside such an upload. A local lake compares the
version and renames under the key's ``flock`` (:class:`LocalLake`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import IO, Callable, Iterable, Iterator
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


class ObjectChanged(LakeError):
    """An object read or copied by version (``If-Match`` on a read, ``x-amz-copy-source-if-match``
    on a copy) is no longer that version: another writer replaced it since it was read."""


#: ``expect`` of a conditional write: no condition at all (not used for a day's objects).
ANY = object()
#: The S3 user metadata (``x-amz-meta-*``) every fenced write carries: the Dagster run that wrote
#: the object, and one id per write call (so a retried request can recognise its own earlier write).
RUN_ID_META, WRITE_ID_META = "run-id", "write-id"


@dataclass(frozen=True)
class Version:
    """One stored version of an object: its ETag (quoted), size in bytes, when it was stored
    (Unix seconds, the storage's clock: S3 ``Last-Modified``, a local file's mtime) and, when a
    fenced write stored it, the writer's run id and write id (S3 ``x-amz-meta-run-id``/``write-id``)."""

    etag: str
    size: int
    modified: float
    run_id: str | None = None
    write_id: str | None = None


@dataclass(frozen=True)
class Written:
    """What a write stored, from the write's own answer: the new ETag (None when nothing was stored:
    an empty day without object), the bytes sent, and the Parquet rows of those bytes when known
    (the footer of the file sent, or of the source version copied)."""

    etag: str | None
    bytes: int
    rows: int | None = None


@dataclass(frozen=True)
class Record:
    """A small object read with its version and the storage's clock: ``data`` and ``etag`` (None when
    absent), ``modified`` (its Last-Modified / mtime, Unix s) and ``now`` (the storage's time of the
    answer: S3's ``Date`` header, a local lake's file-system clock)."""

    data: bytes | None
    etag: str | None
    modified: float | None
    now: float


def new_write_id() -> str:
    """A fresh id for one write call (stored as ``x-amz-meta-write-id``)."""
    return uuid.uuid4().hex


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

    def put_record(self, key: str, data: bytes, etag: str | None) -> tuple[str, float]:
        """:meth:`put_if_absent` (``etag`` None) or :meth:`put_if_match` of a small record (a
        lease): ``(its new ETag, the storage's time of the answer)``.

        Raises:
            PreconditionFailed: the condition failed.
        """
        return self._put_conditional(key, data, etag), self.now()

    def put_file_if_match(self, key: str, path: str, etag: str | None) -> str:
        """Store the local file ``path`` at ``key`` only if the object there is still ``etag``
        (None: only if there is no object); one PutObject (S3 limit: 5 GB). Returns the new ETag.

        Raises:
            PreconditionFailed: the object changed since ``etag`` was read.
        """
        raise NotImplementedError

    def _put_conditional(self, key: str, data: bytes, etag: str | None) -> str:
        raise NotImplementedError

    # --- fenced writes of a day's objects (tweet_assets.lake.fencing): conditional, named, answered
    #: The storage clock's resolution, seconds (S3's Last-Modified and Date are whole seconds).
    clock_resolution_s = 0.0

    def head(self, key: str) -> Version | None:
        """The object's current :class:`Version`, or None if there is none."""
        raise NotImplementedError

    def read_record(self, key: str) -> Record:
        """A small object (a lease) with its ETag, Last-Modified and the storage's clock, in one request."""
        raise NotImplementedError

    def write_file(self, key: str, path: str, expect, meta: dict | None = None) -> Written:
        """Store the local file ``path`` at ``key`` only if the object there is ``expect`` (an ETag;
        None: only if there is none), with ``meta`` (:data:`RUN_ID_META`, :data:`WRITE_ID_META`).
        S3: one PutObject up to :data:`S3Lake.MULTIPART_THRESHOLD`, else a multipart upload whose
        CompleteMultipartUpload carries the condition. Returns the answer's ETag and the bytes sent.

        Raises:
            PreconditionFailed: the object is not ``expect`` (412, 409, or 404 for If-Match on a gone object).
            LakeError: the write failed otherwise (a failed multipart upload is aborted).
        """
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes, expect, meta: dict | None = None) -> Written:
        """:meth:`write_file` for bytes in memory."""
        raise NotImplementedError

    def copy_version(self, source_key: str, source_etag: str | None, key: str, expect, meta: dict | None = None) -> Written:
        """Copy version ``source_etag`` of ``source_key`` (None: whatever is there) to ``key``, only
        if the object at ``key`` is ``expect``. S3: UploadPartCopy with ``x-amz-copy-source-if-match``
        inside a multipart upload completed with the condition; no bytes pass through this process.

        Raises:
            ObjectChanged: the source is no longer ``source_etag``.
            PreconditionFailed: the target is not ``expect``.
        """
        raise NotImplementedError

    def open_version(self, key: str, etag: str | None) -> IO[bytes]:
        """:meth:`open`, but only while the object is still version ``etag`` (None: any).

        Raises:
            ObjectChanged: it was replaced since ``etag`` was read.
        """
        return self.open(key)

    def read_tail_version(self, key: str, nbytes: int, etag: str | None) -> bytes:
        """:meth:`read_tail` of version ``etag`` only (None: any). Raises ObjectChanged."""
        return self.read_tail(key, nbytes)

    def now(self) -> float:
        """The storage's clock, Unix seconds."""
        return time.time()

    def check_writable(self, run_id: str | None = None) -> str:
        """Write the tiny object ``_tweet_assets_check/write-check`` (the same bytes each time,
        overwriting the last check's): proves, before any work, that the location exists and
        takes writes. Returns its key. On S3 it stays (one ~25-byte object: the pipeline never
        deletes: IAM grants no object deletion, and PutObject only on that one key); a local lake
        writes a file of its own per call instead (:meth:`LocalLake.check_writable`).

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
#: The local lake's lock files for conditional writes (one per key, never listed as objects), its
#: writers' records (who stored each object: ``writers/<sha1 of the path>.json``) and its clock file.
LOCK_DIR = ".tweet_assets-locks"
#: How long a conditional local write waits for the key's lock (held for a compare and a rename,
#: milliseconds, unless its holder is stopped): past it the write fails naming the lock file.
LOCK_WAIT_S = 120.0
_ETAG_CACHE_SIZE = 4096
_etag_cache: "OrderedDict[str, tuple[tuple, str]]" = OrderedDict()  # path -> (stat signature, ETag), this process
_etag_guard = threading.Lock()


def _md5_etag(handle) -> str:
    digest = hashlib.md5()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return f'"{digest.hexdigest()}"'


def _signature(st: os.stat_result) -> tuple:
    """A file version's identity: every local write renames a new file (a new inode) over the
    target, so (device, inode, size, mtime, ctime) changes with each write."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _cached_etag(path: str, sig: tuple) -> str | None:
    with _etag_guard:
        hit = _etag_cache.get(path)
        return hit[1] if hit is not None and hit[0] == sig else None


def _cache_etag(path: str, sig: tuple, etag: str) -> None:
    with _etag_guard:
        _etag_cache[path] = (sig, etag)
        _etag_cache.move_to_end(path)
        while len(_etag_cache) > _ETAG_CACHE_SIZE:
            _etag_cache.popitem(last=False)


class _HashingWriter:
    """A binary file wrapper that counts and MD5-hashes what is written through it."""

    def __init__(self, out):
        self.out, self.md5, self.size = out, hashlib.md5(), 0

    def write(self, data) -> int:
        self.md5.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


class LocalLake(Lake):
    """A directory on this machine (the embedded default).

    ``lock_root`` is the directory whose ``.tweet_assets-locks/`` serialises conditional writes:
    the lake's own root, or, for a collection's folder opened as a lake of its own
    (:func:`tweet_assets.lake.prefixes.sub_lake`), the parent lake's, so both views of one file
    take the same lock.
    """

    def __init__(self, root: str, lock_root: str | None = None):
        refuse_control_characters("lake directory", root)
        self.root = os.path.abspath(os.path.expanduser(root))
        self.lock_root = os.path.abspath(lock_root) if lock_root else self.root
        self.url = self.root

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def uri(self, key: str) -> str:
        return self._path(key)

    def _stage(self, key: str, write) -> tuple[str, str, int]:
        """Write a temporary file beside ``key``'s target: ``(its path, its ETag, its bytes)``."""
        target = self._path(key)
        tmp = None
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=TMP_PREFIX, suffix=TMP_SUFFIX)
            with os.fdopen(fd, "wb") as out:
                hashing = _HashingWriter(out)
                write(hashing)
            staged, tmp = tmp, None
            return staged, f'"{hashing.md5.hexdigest()}"', hashing.size
        except OSError as exc:
            raise LakeError(f"cannot write {target}: {exc}. Check that the lake directory is writable.") from exc
        finally:
            if tmp is not None:  # the write failed: no temporary left beside the target
                _remove_quietly(tmp)

    def _commit(self, staged: str, key: str, etag: str) -> None:
        """Rename the staged file over ``key``'s target and remember its ETag by its stat signature."""
        target = self._path(key)
        try:
            fd = os.open(staged, os.O_RDONLY)
        except OSError as exc:
            raise LakeError(f"cannot write {target}: {exc}. Check that the lake directory is writable.") from exc
        try:
            os.replace(staged, target)
            _cache_etag(target, _signature(os.fstat(fd)), etag)
        except OSError as exc:
            _remove_quietly(staged)
            raise LakeError(f"cannot write {target}: {exc}. Check that the lake directory is writable.") from exc
        finally:
            os.close(fd)

    def _atomic(self, key: str, write) -> int:
        staged, etag, size = self._stage(key, write)
        self._commit(staged, key, etag)
        return size

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
    # <lock root>/.tweet_assets-locks/<first 2 hex of sha1 of the path>.lock, 256 files at most, taken by every conditional writer,
    # threads and processes alike) around "compare the version, then rename the staged file"
    def _relative(self, key: str) -> str:
        return os.path.relpath(self._path(key), self.lock_root).replace(os.sep, "/")

    @contextlib.contextmanager
    def _key_lock(self, key: str):
        folder = os.path.join(self.lock_root, LOCK_DIR)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, hashlib.sha1(self._relative(key).encode()).hexdigest()[:2] + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LakeError(
                            f"cannot write {self._path(key)}: its lock {path} has been held for over {LOCK_WAIT_S:g} s by another "
                            "process (a stopped or hung run?); find it with `fuser` and end it, then run this again."
                        ) from None
                    time.sleep(0.005)
            yield
        finally:
            os.close(fd)

    def _writer_path(self, key: str) -> str:
        return os.path.join(self.lock_root, LOCK_DIR, "writers", hashlib.sha1(self._relative(key).encode()).hexdigest() + ".json")

    def _record_writer(self, key: str, etag: str, meta: dict | None) -> None:
        """Who stored ``key``'s version ``etag`` (the local stand-in for S3's ``x-amz-meta-*``), under the key's lock."""
        import orjson

        path = self._writer_path(key)
        if not meta:
            _remove_quietly(path)
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=TMP_PREFIX, suffix=TMP_SUFFIX)
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps({"etag": etag, **meta}))
        os.replace(tmp, path)

    def _writer(self, key: str, etag: str) -> dict:
        import orjson

        try:
            with open(self._writer_path(key), "rb") as handle:
                record = orjson.loads(handle.read())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) and record.get("etag") == etag else {}

    def _etag_of(self, handle) -> str:
        """The ETag of an open file's version: cached by its stat signature, else its MD5."""
        path = handle.name if isinstance(handle.name, str) else None
        sig = _signature(os.fstat(handle.fileno()))
        if path is not None:
            hit = _cached_etag(path, sig)
            if hit is not None:
                return hit
        etag = _md5_etag(handle)
        handle.seek(0)
        if path is not None:
            _cache_etag(path, sig, etag)
        return etag

    def etag(self, key: str) -> str | None:
        """The MD5 of the file's bytes, quoted (S3's ETag of a single-part object), or None
        (computed once per file version: remembered by its stat signature)."""
        try:
            with open(self._path(key), "rb") as handle:
                return self._etag_of(handle)
        except FileNotFoundError:
            return None

    def head(self, key: str) -> Version | None:
        try:
            with open(self._path(key), "rb") as handle:
                st = os.fstat(handle.fileno())
                etag = self._etag_of(handle)
        except FileNotFoundError:
            return None
        writer = self._writer(key, etag)
        return Version(etag, st.st_size, st.st_mtime, writer.get(RUN_ID_META), writer.get(WRITE_ID_META))

    def now(self) -> float:
        """The file system's clock: the mtime of ``.tweet_assets-locks/clock`` just touched (the
        clock that stamped every object's mtime, also on a network file system)."""
        folder = os.path.join(self.lock_root, LOCK_DIR)
        path = os.path.join(folder, "clock")
        try:
            os.makedirs(folder, exist_ok=True)
            with open(path, "ab"):
                pass
            os.utime(path)
            return os.stat(path).st_mtime
        except OSError as exc:
            raise LakeError(f"cannot write {path}: {exc}. Check that the lake directory is writable.") from exc

    def read_with_etag(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            with open(self._path(key), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None, None
        return data, f'"{hashlib.md5(data).hexdigest()}"'

    def read_record(self, key: str) -> Record:
        now = self.now()
        try:
            with open(self._path(key), "rb") as handle:
                modified = os.fstat(handle.fileno()).st_mtime
                data = handle.read()
        except FileNotFoundError:
            return Record(None, None, None, now)
        return Record(data, f'"{hashlib.md5(data).hexdigest()}"', modified, now)

    def _refusal(self, key: str, expect, current: str | None) -> PreconditionFailed:
        said = "exists" if expect is None else ("is gone" if current is None else f"is {current}, not {expect}")
        return PreconditionFailed(f"conditional write to {self._path(key)} refused: the object {said} (another writer changed it since it was read).")

    def _replace_if(self, key: str, staged: str, new_etag: str, expect, meta: dict | None) -> None:
        """Under the key's lock: compare the current version with ``expect``, rename the staged file."""
        try:
            with self._key_lock(key):
                if expect is not ANY:
                    current = self.etag(key)
                    if current != expect:
                        raise self._refusal(key, expect, current)
                self._commit(staged, key, new_etag)
                staged = None
                self._record_writer(key, new_etag, meta)
        except OSError as exc:
            raise LakeError(f"cannot write {self._path(key)}: {exc}. Check that the lake directory is writable.") from exc
        finally:
            if staged is not None:
                _remove_quietly(staged)

    def _put_conditional(self, key: str, data: bytes, etag: str | None) -> str:
        return self.write_bytes(key, data, etag).etag

    def put_file_if_match(self, key: str, path: str, etag: str | None) -> str:
        return self.write_file(key, path, etag).etag

    def write_file(self, key: str, path: str, expect, meta: dict | None = None) -> Written:
        def copy(out):
            with open(path, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)

        staged, etag, size = self._stage(key, copy)
        self._replace_if(key, staged, etag, expect, meta)
        return Written(etag, size)

    def write_bytes(self, key: str, data: bytes, expect, meta: dict | None = None) -> Written:
        staged, etag, size = self._stage(key, lambda out: out.write(data))
        self._replace_if(key, staged, etag, expect, meta)
        return Written(etag, size)

    def copy_version(self, source_key: str, source_etag: str | None, key: str, expect, meta: dict | None = None) -> Written:
        with self.open_version(source_key, source_etag) as src:
            staged, etag, size = self._stage(key, lambda out: shutil.copyfileobj(src, out, 1 << 20))
        self._replace_if(key, staged, etag, expect, meta)
        return Written(etag, size)

    def open_version(self, key: str, etag: str | None) -> IO[bytes]:
        handle = self.open(key)
        if etag is not None:
            try:
                current = self._etag_of(handle)
            except BaseException:
                handle.close()
                raise
            if current != etag:
                handle.close()
                raise ObjectChanged(f"{self._path(key)} changed since this run read it (ETag then {etag}, now {current}): another writer replaced it.")
        return handle

    def read_tail_version(self, key: str, nbytes: int, etag: str | None) -> bytes:
        with self.open_version(key, etag) as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - nbytes))
            return handle.read()

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
        return self.read_tail_version(key, nbytes, None)

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

    def check_writable(self, run_id: str | None = None) -> str:
        """Write and remove a file of this call's own in the lake's directory
        (``.tmp-write-check-<run>-<pid>-XXXX.part``: never listed as an object, never shared), so two
        runs or processes checking at once never remove each other's check (#36 point 7). Returns
        its name."""
        name = f"{TMP_PREFIX}write-check-{(run_id or 'run')[:8]}-{os.getpid()}-"
        try:
            os.makedirs(self.root, exist_ok=True)
            fd, path = tempfile.mkstemp(dir=self.root, prefix=name, suffix=TMP_SUFFIX)
        except OSError as exc:
            raise LakeError(f"cannot write in {self.root}: {exc}. Check that the lake directory is writable.") from exc
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(CHECK_BODY)
        except OSError as exc:
            raise LakeError(f"cannot write {path}: {exc}. Check that the lake directory is writable.") from exc
        finally:
            _remove_quietly(path)
        return os.path.basename(path)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


class _NotSent(Exception):
    """A part of a failed multipart upload that was never sent (another part failed first)."""


class S3Lake(Lake):
    """``s3://bucket/prefix`` through a boto3 S3 client (from dagster-aws's ``S3Resource``)."""

    #: A fenced write above this many bytes is a multipart upload (boto3's own threshold, 8 MiB).
    MULTIPART_THRESHOLD = 8 << 20
    #: Part size of such an upload (at least 8 MiB; more for files over 80 GB: S3 takes 10,000 parts).
    PART_BYTES = 8 << 20
    #: A server-side copy goes in parts of this size above it (UploadPartCopy copies at most 5 GiB).
    COPY_PART_BYTES = 5 << 30
    UPLOAD_THREADS = 4
    clock_resolution_s = 1.0

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
                "403": "access denied, or no object there (S3 answers 403 for a missing key to a role without s3:ListBucket on the bucket; deploy/iam/policy.json grants it for that): check the IAM policy, and that the upstream partition was materialized",
                "InvalidAccessKeyId": "the AWS access key is not valid: check the credentials in the environment or instance profile",
                "SignatureDoesNotMatch": "the AWS secret key does not match: check the credentials",
                "NoSuchKey": "no object there: materialize the upstream asset for this partition first",
                "404": "no object there: materialize the upstream asset for this partition first",
                "NoSuchUpload": "the multipart upload was aborted meanwhile (another run took over this day's lease and removed it, or a lifecycle rule did)",
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

    @staticmethod
    def _condition(expect) -> dict:
        if expect is ANY:
            return {}
        return {"IfNoneMatch": "*"} if expect is None else {"IfMatch": expect}

    def _refused(self, key: str, expect, exc: Exception) -> Exception:
        """``exc`` as :class:`PreconditionFailed` when S3 refused the write's condition: 412
        PreconditionFailed, 409 ConditionalRequestConflict, or 404 NoSuchKey for ``If-Match`` on an
        object that is gone (S3 User Guide, "conditional writes"); any other failure as LakeError."""
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code")
            gone = expect not in (None, ANY) and code in ("NoSuchKey", "404")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409") or gone:
                said = "exists" if expect is None else (f"is gone (not {expect})" if gone else f"is no longer {expect}")
                return PreconditionFailed(f"conditional write to {self.uri(key)} refused ({code}): the object {said} (another writer changed it since it was read).")
        return self._fail("put", key, exc)

    @staticmethod
    def _date(response: dict) -> float:
        """The storage's clock: the answer's HTTP ``Date`` header (RFC 9110), Unix seconds (the host's
        clock only if an endpoint sent none)."""
        text = (response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}).get("date")
        try:
            return parsedate_to_datetime(text).timestamp() if text else time.time()
        except (TypeError, ValueError):
            return time.time()

    def _conditional(self, key: str, body, etag: str | None) -> str:
        """One PutObject with ``IfNoneMatch="*"`` (``etag`` None) or ``IfMatch=etag`` (S3 API
        Reference, PutObject: 412 PreconditionFailed when the condition fails, 409
        ConditionalRequestConflict when a concurrent conditional write to the key wins)."""
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, **self._condition(etag))["ETag"]
        except Exception as exc:
            raise self._refused(key, etag, exc) from exc

    def _put_conditional(self, key: str, data: bytes, etag: str | None) -> str:
        return self._conditional(key, data, etag)

    def put_record(self, key: str, data: bytes, etag: str | None) -> tuple[str, float]:
        try:
            answer = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **self._condition(etag))
        except Exception as exc:
            raise self._refused(key, etag, exc) from exc
        return answer["ETag"], self._date(answer)

    def put_file_if_match(self, key: str, path: str, etag: str | None) -> str:
        return self.write_file(key, path, etag).etag

    def head(self, key: str) -> Version | None:
        head = self._head(key)
        if head is None:
            return None
        meta = head.get("Metadata") or {}
        return Version(head["ETag"], head["ContentLength"], head["LastModified"].timestamp(), meta.get(RUN_ID_META), meta.get(WRITE_ID_META))

    def read_record(self, key: str) -> Record:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return Record(response["Body"].read(), response["ETag"], response["LastModified"].timestamp(), self._date(response))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return Record(None, None, None, self._date(exc.response))
            raise self._fail("get", key, exc) from exc
        except Exception as exc:
            raise self._fail("get", key, exc) from exc

    def write_bytes(self, key: str, data: bytes, expect, meta: dict | None = None) -> Written:
        try:
            answer = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, Metadata=dict(meta or {}), **self._condition(expect))
        except Exception as exc:
            raise self._refused(key, expect, exc) from exc
        return Written(answer["ETag"], len(data))

    def write_file(self, key: str, path: str, expect, meta: dict | None = None) -> Written:
        size = os.path.getsize(path)
        if size <= self.MULTIPART_THRESHOLD:
            try:
                with open(path, "rb") as body:
                    answer = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, Metadata=dict(meta or {}), **self._condition(expect))
            except Exception as exc:
                raise self._refused(key, expect, exc) from exc
            return Written(answer["ETag"], size)
        part = max(self.PART_BYTES, math.ceil(size / 10_000))
        ranges = [(number, offset, min(part, size - offset)) for number, offset in enumerate(range(0, size, part), start=1)]

        def upload(client, upload_id: str, number: int, offset: int, length: int) -> dict:
            with open(path, "rb") as handle:
                handle.seek(offset)
                body = handle.read(length)
            return client.upload_part(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id, PartNumber=number, Body=body)

        return Written(self._multipart(key, expect, meta, ranges, upload, "upload to"), size)

    def copy_version(self, source_key: str, source_etag: str | None, key: str, expect, meta: dict | None = None) -> Written:
        from botocore.exceptions import ClientError

        try:  # the source's size, of that version only
            source = self.client.head_object(Bucket=self.bucket, Key=self._key(source_key), **({"IfMatch": source_etag} if source_etag else {}))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("412", "PreconditionFailed"):
                raise self._changed(source_key, source_etag) from exc
            raise self._fail(f"copy s3://{self.bucket}/{self._key(source_key)} to", key, exc) from exc
        except Exception as exc:
            raise self._fail(f"copy s3://{self.bucket}/{self._key(source_key)} to", key, exc) from exc
        size = source["ContentLength"]
        pinned = source_etag or source["ETag"]
        if size == 0:  # UploadPartCopy needs at least one byte: an empty object is stored as such
            return self.write_bytes(key, b"", expect, meta)
        ranges = [(number, offset, min(self.COPY_PART_BYTES, size - offset)) for number, offset in enumerate(range(0, size, self.COPY_PART_BYTES), start=1)]
        copy_source = {"Bucket": self.bucket, "Key": self._key(source_key)}

        def copy(client, upload_id: str, number: int, offset: int, length: int) -> dict:
            extra = {} if len(ranges) == 1 else {"CopySourceRange": f"bytes={offset}-{offset + length - 1}"}
            try:
                answer = client.upload_part_copy(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id, PartNumber=number, CopySource=copy_source, CopySourceIfMatch=pinned, **extra
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("412", "PreconditionFailed"):
                    raise self._changed(source_key, pinned) from exc
                raise
            return {"ETag": answer["CopyPartResult"]["ETag"], **{k: v for k, v in answer["CopyPartResult"].items() if k.startswith("Checksum")}}

        return Written(self._multipart(key, expect, meta, ranges, copy, f"copy s3://{self.bucket}/{self._key(source_key)} to"), size)

    def _changed(self, key: str, etag: str | None) -> ObjectChanged:
        return ObjectChanged(f"{self.uri(key)} changed since this run read it (ETag then {etag}): another writer replaced it.")

    def _multipart(self, key: str, expect, meta: dict | None, ranges: list, send: Callable, action: str) -> str:
        """One multipart upload of ``ranges`` (``(part number, offset, length)``, each sent by
        ``send(client, upload id, number, offset, length)``), completed only if the object at ``key``
        is ``expect`` (CompleteMultipartUpload ``If-Match``/``If-None-Match``); returns its ETag.
        Aborted as soon as anything fails: the parts still queued are not sent, those in flight end
        first (S3 User Guide: a part uploaded during an abort may survive it), then the abort (one
        that cannot get through is left to the rerun's sweep and the bucket's lifecycle rule)."""
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._key(key), Metadata=dict(meta or {}))["UploadId"]
        except Exception as exc:
            raise self._fail(action, key, exc) from exc
        failed = threading.Event()

        def part(r):
            if failed.is_set():  # a part a worker took after another failed: not sent
                raise _NotSent()
            try:
                return send(self.client, upload_id, *r)
            except BaseException:
                failed.set()
                raise

        pool = ThreadPoolExecutor(max_workers=min(self.UPLOAD_THREADS, len(ranges)), thread_name_prefix="lake-upload")
        try:
            futures = [pool.submit(part, r) for r in ranges]
            try:
                answers = [future.result() for future in futures]
            except BaseException:
                failed.set()
                pool.shutdown(wait=True, cancel_futures=True)  # the queued parts cancelled; those in flight end before the abort
                first = next((f.exception() for f in futures if not f.cancelled() and f.done() and f.exception() is not None and not isinstance(f.exception(), _NotSent)), None)
                if first is not None:
                    raise first from None  # the part that failed, not one skipped after it
                raise
            pool.shutdown()
            parts = [
                {"PartNumber": number, "ETag": answer["ETag"], **{k: v for k, v in answer.items() if k.startswith("Checksum") and k != "ChecksumType"}}
                for (number, _, _), answer in zip(ranges, answers)
            ]
            try:
                return self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id, MultipartUpload={"Parts": parts}, **self._condition(expect)
                )["ETag"]
            except Exception as exc:
                raise self._refused(key, expect, exc) from exc
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
            if isinstance(exc, LakeError):
                raise
            if isinstance(exc, Exception):
                raise self._fail(action, key, exc) from exc
            raise

    def open_version(self, key: str, etag: str | None) -> IO[bytes]:
        return self._get(key, etag, {})["Body"]

    def read_tail_version(self, key: str, nbytes: int, etag: str | None) -> bytes:
        return self._get(key, etag, {"Range": f"bytes=-{nbytes}"}, "get the end of")["Body"].read()

    def _get(self, key: str, etag: str | None, extra: dict, action: str = "get") -> dict:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), **({"IfMatch": etag} if etag else {}), **extra)
        except ClientError as exc:
            if etag and exc.response.get("Error", {}).get("Code") in ("412", "PreconditionFailed"):
                raise self._changed(key, etag) from exc
            raise self._fail(action, key, exc) from exc
        except Exception as exc:
            raise self._fail(action, key, exc) from exc

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
        # unconditional (tests, tools): boto3's managed copy, CopyObject, multipart above its threshold
        # (objects > 5 GB). A day's published object is copied by copy_version, fenced.
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
