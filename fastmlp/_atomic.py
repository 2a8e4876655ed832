"""Atomic file writes: a file is replaced only once its new content is completely on disk.

Used for every file fastmlp writes (model files, prediction tables, images).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path, write) -> None:
    """Create or replace ``path`` atomically.

    ``write(fh)`` writes the content to ``fh``, a binary file object on a temporary file in the same folder.
    Only when it returns is the data flushed to disk and the temporary file renamed over ``path``; if it
    raises, the temporary file is removed and ``path`` is left exactly as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its folder must exist.
    write : callable
        ``write(fh) -> None``.
    """
    path = Path(os.fspath(path))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} (for {str(path)!r}) does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder, not a file")
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        mode = 0o666 & ~mask
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
