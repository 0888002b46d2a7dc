"""Temporary files written beside a target and then renamed over it: their names, and cleaning up stale ones.

Checkpoints, models, metrics (``minicnn.train``) and MNIST downloads
(``minicnn.data.mnist``) are written to ``.<name>.<pid>.<8 hex>.<suffix>``
beside ``<name>`` and moved into place with ``os.replace``. A process killed
mid-write (SIGKILL, power loss) cannot remove its temporary file, so the next
write of the same target removes the ones that are stale:

* the process named in the file name has ended, and the file has not been
  written to for :data:`QUIET_SECONDS` (a writer in another PID namespace
  sharing the folder keeps its file fresh);
* or the file is older than :data:`MAX_AGE_SECONDS` (its PID was reused);
* or, for names without a PID (``.part`` files of older minicnn versions,
  made by ``tempfile.mkstemp``), the file is older than :data:`LEGACY_AGE_SECONDS`.

Nothing else is touched: only names of this pattern for the same target.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

__all__ = ["temporary_path", "remove_stale_temporaries", "QUIET_SECONDS", "MAX_AGE_SECONDS", "LEGACY_AGE_SECONDS"]

QUIET_SECONDS = 10.0
MAX_AGE_SECONDS = 24 * 3600.0
LEGACY_AGE_SECONDS = 3600.0


def temporary_path(target, suffix):
    """``.<name>.<pid>.<8 hex>.<suffix>`` beside ``target``: a fresh name for this process to write."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{suffix}")


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):  # another user's process, or no way to tell: assume alive
        return True
    return True


def remove_stale_temporaries(target, suffix, *, legacy=False, now=None):
    """Delete the stale temporary files of ``target`` (see the module docstring); returns the paths removed.

    ``legacy`` also considers ``.<name>.<8 characters>.<suffix>`` (``tempfile.mkstemp`` names, no PID).
    """
    target = Path(target)
    name, tag = re.escape(target.name), re.escape(suffix)
    with_pid = re.compile(rf"\.{name}\.(\d{{1,10}})\.[0-9a-f]{{8}}\.{tag}")
    without_pid = re.compile(rf"\.{name}\.[a-z0-9_]{{8}}\.{tag}") if legacy else None
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:  # no folder yet, or not readable: nothing to clean
        return removed
    for entry in entries:
        match = with_pid.fullmatch(entry.name)
        if match is None and not (without_pid is not None and without_pid.fullmatch(entry.name)):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if match is not None:
            stale = age > MAX_AGE_SECONDS or (age > QUIET_SECONDS and not _process_alive(int(match.group(1))))
        else:
            stale = age > LEGACY_AGE_SECONDS
        if stale:
            try:
                os.unlink(entry.path)
            except OSError:  # gone already (another cleaner), or not ours to remove
                continue
            removed.append(Path(entry.path))
    return removed
