"""Read a JSON-lines file, plain or gzip, line by line, and survive a damaged file.

A file is read as gzip when it starts with the gzip magic bytes (RFC 1952 section 2.3.1: ``1f 8b``),
whatever its name: a ``.gz`` file that is plain text is read as plain text (and said so), a
``.jsonl`` file that is gzip is decompressed. Concatenated gzip members are read one after another,
as ``gzip`` does; zero bytes after the last member are ignored, as ``gzip`` does.

Damage does not raise: the lines before it are yielded (the last one possibly cut short, exactly as
it was decompressed), and :attr:`JsonLinesFile.damage` says what was wrong and at which byte of the
file reading stopped, so that the caller can quarantine the rest and go on with other files.
A UTF-8 byte order mark at the start of the file is removed (RFC 8259 section 8.1: JSON text must
not begin with one; parsers may ignore it).

Decompression runs on ISA-L (``isal``); only after damage is found is the broken gzip member read
again with the standard ``zlib``, to recover every byte before the damage and find its exact offset.
"""

from __future__ import annotations

import codecs
import os
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from isal import isal_zlib

GZIP_MAGIC = b"\x1f\x8b"
GZIP_WBITS = 31  # zlib: a gzip header and trailer, 32 KB window
COMPRESSED_CHUNK = 256 << 10
PLAIN_CHUNK = 4 << 20
RECOVERY_CHUNK = 64 << 10


@dataclass(frozen=True)
class Damage:
    """Why a file could not be read to its end.

    Attributes:
        path: the file.
        offset: byte of the file (compressed bytes for gzip) at which reading stopped.
        size: the file's size in bytes.
        reason: what was found there (``gzip stream truncated``, ``gzip data corrupt: ...``).
        bytes_read: bytes of lines (uncompressed) read before it.
    """

    path: str
    offset: int
    size: int
    reason: str
    bytes_read: int

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.reason} at byte {self.offset:,} of {self.size:,}; "
            f"{self.bytes_read:,} bytes of lines read before it, the rest of the file is unreadable"
        )


class JsonLinesFile:
    """One JSON-lines file (plain or gzip) read as lines; see the module docstring.

    After :meth:`lines` is exhausted: ``damage`` is a :class:`Damage` or None, ``gzip`` says whether
    the file was gzip, ``bom`` whether a UTF-8 byte order mark was removed, ``note`` a remark for the
    log (a ``.gz`` name on a plain file), or None.
    """

    def __init__(self, path: str):
        self.path = path
        self.damage: Damage | None = None
        self.gzip = False
        self.bom = False
        self.note: str | None = None
        self.bytes_read = 0

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """``(line number, line)`` for each non-blank line, 1-based, without ``\\n`` or ``\\r\\n``.

        The file's last line is yielded even without a final newline (a cut-short page is yielded
        as it was read). Raises OSError (with the path) when the file cannot be opened or read.
        """
        tail: list[bytes] = []  # the line being read, when it spans blocks (joined once, not per block)
        number = 0
        first = True
        for block in self._blocks():
            if first:
                first = False
                if block.startswith(codecs.BOM_UTF8):
                    self.bom = True
                    block = block[len(codecs.BOM_UTF8) :]
            if b"\n" not in block:
                tail.append(block)
                continue
            parts = block.split(b"\n")
            if tail:
                tail.append(parts[0])
                parts[0] = b"".join(tail)
            tail = [parts.pop()]
            for part in parts:
                number += 1
                if part[-1:] == b"\r":
                    part = part[:-1]
                if part and not part.isspace():
                    yield number, part
        number += 1
        last = b"".join(tail)
        if last.endswith(b"\r"):
            last = last[:-1]
        if last and not last.isspace():
            yield number, last

    def _blocks(self) -> Iterator[bytes]:
        try:
            handle = open(self.path, "rb")
        except OSError as exc:
            raise OSError(f"replay source: cannot open {self.path}: {exc}") from exc
        with handle:
            head = handle.read(max(PLAIN_CHUNK, len(GZIP_MAGIC)))
            if head[:2] == GZIP_MAGIC:
                self.gzip = True
                blocks = self._gzip_blocks(handle, head)
            else:
                if self.path.endswith(".gz"):
                    self.note = f"{self.path} is named .gz but is not gzip (no gzip magic bytes): read as plain text"
                blocks = self._plain_blocks(handle, head)
            for block in blocks:
                self.bytes_read += len(block)
                yield block

    @staticmethod
    def _plain_blocks(handle: BinaryIO, head: bytes) -> Iterator[bytes]:
        block = head
        while block:
            yield block
            block = handle.read(PLAIN_CHUNK)

    def _gzip_blocks(self, handle: BinaryIO, head: bytes) -> Iterator[bytes]:
        member_start = 0  # file offset of the current gzip member
        member_out = 0  # uncompressed bytes yielded from it
        pos = 0  # file offset of ``data``
        fed = False
        decompressor = isal_zlib.decompressobj(wbits=GZIP_WBITS)
        data = head
        while True:
            if not data:
                data = handle.read(COMPRESSED_CHUNK)
                if not data:
                    break
            try:
                out = decompressor.decompress(data)
            except Exception as exc:  # isal's IsalError: not gzip, corrupt deflate data, bad checksum
                yield from self._recover(handle, member_start, member_out, str(exc))
                return
            fed = True
            pos += len(data)
            data = b""
            if out:
                member_out += len(out)
                yield out
            if decompressor.eof:  # the member ended: what follows is another member, zeros, or damage
                data = decompressor.unused_data
                pos -= len(data)
                member_start, member_out, fed = pos, 0, False
                decompressor = isal_zlib.decompressobj(wbits=GZIP_WBITS)
        if fed and not decompressor.eof:  # truncated: zlib gets a few more bytes out of the cut block
            yield from self._recover(handle, member_start, member_out, None)

    def _recover(self, handle: BinaryIO, member_start: int, skip: int, isal_error: str | None) -> Iterator[bytes]:
        """Read the broken member again with zlib from its start, yield what it holds after the
        ``skip`` bytes already yielded, and record the exact offset of the damage (``isal_error``
        None: the file ended inside the member)."""
        size = os.fstat(handle.fileno()).st_size
        handle.seek(member_start)
        if skip == 0 and _zeros_to_end(handle):
            return  # zero padding after the last member: gzip ignores it too
        handle.seek(member_start)
        decompressor = zlib.decompressobj(wbits=GZIP_WBITS)
        pos = member_start
        produced = skip > 0
        reason = f"gzip data corrupt ({isal_error})"
        offset = pos
        while True:
            chunk = handle.read(RECOVERY_CHUNK)
            if not chunk:
                offset = pos
                if not decompressor.eof:
                    reason = f"gzip stream truncated (the file ends inside the gzip member that starts at byte {member_start:,})"
                break
            saved = decompressor.copy()
            try:
                out = decompressor.decompress(chunk)
            except zlib.error:
                out, at, exc = _locate(saved, chunk)  # again in smaller steps, to find the byte
                offset, reason = pos + at, f"gzip data corrupt ({exc})"
                produced = produced or bool(out)
                skip = yield from _after(out, skip)
                break
            pos += len(chunk)
            produced = produced or bool(out)
            skip = yield from _after(out, skip)
            if decompressor.eof:  # zlib read the member whole although ISA-L did not: report ISA-L's error
                offset = pos - len(decompressor.unused_data)
                break
        if not produced and isal_error is not None:  # nothing of this "member" was readable
            offset = member_start
            if member_start:
                reason = f"the bytes after the gzip member that ends at byte {member_start:,} are not gzip ({reason})"
        self.damage = Damage(self.path, offset, size, reason, self.bytes_read)


def _locate(decompressor, chunk: bytes, steps: tuple = (1024, 1)) -> tuple[bytes, int, Exception]:
    """Feed ``chunk`` to a zlib ``decompressor`` in pieces of ``steps[0]`` bytes, then of the next
    step inside the failing piece: ``(output before the error, offset in chunk, the error)``."""
    out = bytearray()
    step, finer = steps[0], steps[1:]
    for i in range(0, len(chunk), step):
        saved = decompressor.copy() if finer else None
        try:
            out += decompressor.decompress(chunk[i : i + step])
        except zlib.error as exc:
            if not finer:
                return bytes(out), i, exc
            more, at, exc = _locate(saved, chunk[i : i + step], finer)
            return bytes(out) + more, i + at, exc
    raise AssertionError("zlib failed on the whole chunk but not on its pieces")


def _after(out: bytes, skip: int):
    """Yield ``out`` minus its first ``skip`` bytes (already yielded); return the skip left."""
    if skip >= len(out):
        return skip - len(out)
    yield out[skip:] if skip else out
    return 0


def _zeros_to_end(handle: BinaryIO) -> bool:
    while True:
        chunk = handle.read(RECOVERY_CHUNK)
        if not chunk:
            return True
        if chunk.count(0) != len(chunk):
            return False
