"""Atomic folder writes: a model is written to a temporary folder beside its destination, then moved into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

TMP_PREFIX = ".tmp-st_matryoshka-"
OLD_PREFIX = ".old-st_matryoshka-"


def check_output_free(output: str, overwrite: bool, argument: str = "--output") -> None:
    """Refuse an existing, non-empty ``output`` unless ``overwrite``; refuse a file or an uncreatable parent early.

    Called before any expensive work and again on save, so a finished run is never lost to an occupied or
    unwritable destination.
    """
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)) and not overwrite:
        raise ValueError(f"{argument}: {output!r} already holds files; pass --overwrite to replace it")
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"{argument}: {output!r} is a file, not a folder")
    check_creatable(output, argument)


def check_creatable(path: str, argument: str) -> None:
    """Refuse a path whose nearest existing ancestor is a file or not writable (so ``path`` could not be made)."""
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{argument}: cannot create {path!r}: {existing!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{argument}: cannot create {path!r}: {existing!r} is not writable")


def umask() -> int:
    """The process' umask (``os.umask`` can only read it by setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temp(parent: str) -> None:
    """Remove temporary folders that a killed save left in ``parent`` (their writing process no longer runs)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if not name.startswith((TMP_PREFIX, OLD_PREFIX)):
            continue
        pid_text = name.split("-")[2] if name.count("-") >= 3 else ""
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def is_main_process() -> bool:
    """False in every process but rank 0 of a distributed run (``torchrun`` / ``accelerate launch``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def atomic_folder(output: str, overwrite: bool = False, argument: str = "--output") -> Iterator[str]:
    """Yield a temporary folder beside ``output``; on success it replaces ``output``, on failure it is removed.

    An existing non-empty ``output`` is refused unless ``overwrite``; it is replaced only after the new folder is
    complete, so an interrupted write never leaves a half-written model. The folder gets the permissions of any
    other new folder (the user's umask), and temporary folders of killed earlier saves are cleaned up.
    """
    check_output_free(output, overwrite, argument=argument)
    output = os.path.abspath(output)
    parent = os.path.dirname(output)
    try:
        os.makedirs(parent, exist_ok=True)
        clean_stale_temp(parent)
        tmp = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=parent)
        os.chmod(tmp, 0o777 & ~umask())
    except OSError as exc:
        raise ValueError(f"{argument}: cannot write {output!r}: {exc.strerror or exc}") from None
    try:
        yield tmp
        if os.path.exists(output):
            old = tempfile.mkdtemp(prefix=f"{OLD_PREFIX}{os.getpid()}-", dir=parent)
            os.replace(output, os.path.join(old, "model"))
            os.replace(tmp, output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"{argument}: cannot write {output!r}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
