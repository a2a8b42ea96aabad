"""List the files of a replay archive: every matching file read, every refused entry named.

An archive directory is walked recursively without following symbolic links by the walk itself;
each link is judged on its own:

- file names match the pattern case-insensitively (``x.JSONL`` is a ``*.jsonl*`` file like the
  others) and hidden files are files like the others (``.hidden.jsonl``, ``..jsonl``): ``glob``
  skips both, which left their posts unread without a word;
- a link whose target lies outside the archive root (``os.path.realpath`` not under the root's) is
  refused unless ``follow_outside_links``: it could land any file the process can read (a
  credentials file) in the raw zone, the quarantine sample shown in Dagit and the compute logs;
- a link to a directory inside the root is not descended (its files are read once, under their
  real path); a link to one of its own ancestors (``ln -s . loop``) is named as a loop instead of
  failing the replay with ``ELOOP``; a broken link is named; a link to a file inside the root is
  read unless that file is read already (under its own name or another link's);
- a file named explicitly (``path`` is a file) is read, wherever it points.

Every refused entry is an :class:`Refused` with its path, what it is and its size in bytes (of the
target, when there is one), logged as a warning by :meth:`ArchiveListing.log`, one line each.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Refused:
    """An archive entry that is not read: ``path`` (as found under the root), ``why``, and
    ``size`` in bytes of what it points to (None when nothing can be stat'ed)."""

    path: str
    why: str
    size: int | None = None

    def __str__(self) -> str:
        size = "size unknown" if self.size is None else f"{self.size:,} bytes"
        return f"{self.path} ({size}): {self.why}"


@dataclass
class ArchiveListing:
    """``files``: the files to read, sorted by path; ``refused``: the entries not read."""

    root: str
    files: list[str] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    def log(self, log: logging.Logger) -> None:
        """One warning per refused entry, then their count."""
        for entry in self.refused:
            log.warning("replay: not read: %s", entry)
        if self.refused:
            log.warning(
                "replay: %d entr%s of %s not read (named above); %d file(s) read",
                len(self.refused),
                "y" if len(self.refused) == 1 else "ies",
                self.root,
                len(self.files),
            )


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def list_archive(path: str, pattern: str = "*.jsonl*", follow_outside_links: bool = False) -> ArchiveListing:
    """The archive at ``path`` (a file, or a directory walked recursively); see the module docstring.

    Raises:
        FileNotFoundError: ``path`` is neither a file nor a directory, or holds no matching file
            (the message names the entries refused, if any).
    """
    if os.path.isfile(path):
        return ArchiveListing(path, [path])
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"replay source: {path!r} is neither a file nor a directory; set "
            "TWEET_ASSETS_REPLAY_DIR (or the replay resource's path) to a twarc2 JSON-lines archive."
        )
    listing = ArchiveListing(path)
    root_real = os.path.realpath(path)
    wanted = pattern.lower()
    seen: set[str] = set()  # real paths of the files read
    links: list[tuple[str, str]] = []  # (path, real target) of file links, judged after the walk
    for folder, dirs, names in os.walk(path, followlinks=False):
        for name in dirs:
            full = os.path.join(folder, name)
            if not os.path.islink(full):
                continue
            real = os.path.realpath(full)
            if _inside(os.path.realpath(folder), real) or real == root_real:
                listing.refused.append(Refused(full, f"a link to {os.readlink(full)!r}, one of its own parent directories: a loop, not followed"))
            elif not _inside(real, root_real):
                if follow_outside_links:
                    listing.refused.append(Refused(full, f"a link to the directory {real}: directories outside the archive are not walked (link its files instead)"))
                else:
                    listing.refused.append(Refused(full, f"a link to the directory {real}, outside the archive {root_real}: refused"))
            else:
                listing.refused.append(Refused(full, f"a link to the directory {real} inside the archive: not followed, its files are read there"))
        for name in names:
            if not fnmatch.fnmatchcase(name.lower(), wanted):
                continue
            full = os.path.join(folder, name)
            if os.path.islink(full):
                links.append((full, os.path.realpath(full)))
            elif os.path.isfile(full):
                listing.files.append(full)
                seen.add(os.path.realpath(full))
    for full, real in sorted(links):
        if not os.path.exists(full):
            listing.refused.append(Refused(full, f"a broken link (to {os.readlink(full)!r})"))
        elif not os.path.isfile(real):
            listing.refused.append(Refused(full, f"a link to {real}, which is not a regular file", _size(real)))
        elif not _inside(real, root_real) and not follow_outside_links:
            listing.refused.append(
                Refused(full, f"a link to {real}, outside the archive {root_real}: refused (set follow_outside_links to read it)", _size(real))
            )
        elif real in seen:
            listing.refused.append(Refused(full, f"a link to {real}, a file already read", _size(real)))
        else:
            listing.files.append(full)
            seen.add(real)
    listing.files.sort()
    listing.refused.sort(key=lambda r: r.path)
    if not listing.files:
        refused = "; ".join(str(r) for r in listing.refused[:5])
        raise FileNotFoundError(f"replay source: no file matching {pattern!r} under {path!r}" + (f" (not read: {refused})." if refused else "."))
    return listing
