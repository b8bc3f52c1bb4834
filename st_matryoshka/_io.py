"""Atomic folder writes: a model is written to a temporary folder beside its destination, then moved into place."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence

from st_matryoshka._validation import ParameterError

TMP_PREFIX = ".tmp-st_matryoshka-"
OLD_PREFIX = ".old-st_matryoshka-"


MODEL_MARKERS = ("modules.json", "config_sentence_transformers.json", "st_matryoshka.json")
"""Files that make a folder a model (Sentence-Transformers or st_matryoshka) that ``overwrite`` may replace."""

MANIFEST = ".st_matryoshka_files"
"""The list of what a save wrote (top-level names, one a line), written last into every folder a save writes; with
``overwrite`` only those names are replaced, and everything else in the folder (a user's notes, an ``experiments/``
folder) is carried into the new one."""

WRITTEN_BEFORE_MANIFESTS = re.compile(
    r"\d+_\w+|modules\.json|config\.json|config_sentence_transformers\.json|sentence_bert_config\.json|"
    r"model\.safetensors|pytorch_model\.bin|tokenizer(_config)?\.json|special_tokens_map\.json|vocab\.txt|"
    r"README\.md|st_matryoshka(_training)?\.json|st_matryoshka_adaptor|st_matryoshka_modules\.py|"
    r"matryoshka_dims\.png|frontier_.*\.png|frontier\.(md|json|png)|index\..*|rescore\..*|ids\..*|index\.json"
)
"""What a save wrote into a folder that has no :data:`MANIFEST` (saved before manifests): those names are replaced by
``overwrite``, any other is the user's and is kept."""


def is_model_folder(folder: str) -> bool:
    """Whether ``folder`` holds a Sentence-Transformers or st_matryoshka model (one of :data:`MODEL_MARKERS`)."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in MODEL_MARKERS)


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both made absolute, links resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_output_free(
    output: str, overwrite: bool, argument: str = "output", inputs: Sequence[str | None] = ()
) -> None:
    """Refuse an output folder that this run must not write; called before any work and again on save.

    Refused: an existing, non-empty ``output`` unless ``overwrite``; with ``overwrite``, one that is not a model
    folder (:func:`is_model_folder`: a data folder, a folder of the user's own files); the current directory or a
    folder holding it; a folder that is or holds one of ``inputs`` (the data, vectors or model this run reads); a
    file; a path whose parent cannot be created. So a finished run is never lost to an occupied destination, and
    ``overwrite`` never costs a file the user did not ask to replace.
    """
    if inside(os.getcwd(), output):
        raise ParameterError(
            argument, f"{argument}: {output!r} is the current directory or holds it; name a folder for the model"
        )
    for path in inputs:
        if path and os.path.exists(path) and inside(path, output):
            raise ParameterError(
                argument, f"{argument}: {output!r} holds the input {path!r}; write the model elsewhere"
            )
    if os.path.exists(output) and not os.path.isdir(output):
        if not overwrite:
            raise ParameterError(
                argument, f"{argument}: {output!r} already holds files; pass overwrite=True to replace it"
            )
        raise ParameterError(argument, f"{argument}: {output!r} is a file, not a folder")
    if os.path.isdir(output) and os.listdir(output):
        if not overwrite:
            raise ParameterError(
                argument, f"{argument}: {output!r} already holds files; pass overwrite=True to replace it"
            )
        if not is_model_folder(output):
            names = sorted(os.listdir(output))
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise ParameterError(
                argument,
                f"{argument}: {output!r} is not a model folder (it holds {shown}); overwrite=True replaces only a "
                "model folder or an empty one",
            )
    check_creatable(output, argument)


def nearest_existing(path: str) -> str:
    """``path`` made absolute, or its nearest ancestor that exists."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return existing


def check_creatable(path: str, argument: str) -> None:
    """Refuse a path whose nearest existing ancestor is a file or not writable (so ``path`` could not be made)."""
    existing = nearest_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(existing):
        raise ParameterError(argument, f"{argument}: cannot create {path!r}: {existing!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ParameterError(argument, f"{argument}: cannot create {path!r}: {existing!r} is not writable")


def check_writable_file(path: str, argument: str) -> None:
    """Refuse, before any work, a file path that is a folder or whose folder cannot be created or written."""
    if os.path.isdir(path):
        raise ParameterError(argument, f"{argument}: {path!r} is a folder")
    check_creatable(path, argument)


def umask() -> int:
    """The process' umask (``os.umask`` can only read it by setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(folder: str) -> None:
    """Give every file and folder below ``folder`` the permissions of a new one (the user's umask).

    Libraries that write through a private temporary file, as safetensors does, leave ``0600``.
    """
    mask = umask()
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)


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
def atomic_folder(
    output: str, overwrite: bool = False, argument: str = "output", inputs: Sequence[str | None] = ()
) -> Iterator[str]:
    """Yield a temporary folder beside ``output``; on success it becomes ``output``, on failure it is removed.

    ``output`` is checked as :func:`check_output_free` says, before and again after the work. The final move is
    exclusive: when another process wrote ``output`` meanwhile, this one fails with one line instead of replacing it
    (two runs into one folder never both say "saved"); with ``overwrite`` the old model is replaced only after the
    new folder is complete, and put back if the move fails, so an interrupted write never leaves a half-written
    model. The folder gets the permissions of any other new folder (the user's umask), and temporary folders of
    killed earlier saves are cleaned up.
    """
    check_output_free(output, overwrite, argument=argument, inputs=inputs)
    output = os.path.abspath(output)
    parent = os.path.dirname(output)
    try:
        os.makedirs(parent, exist_ok=True)
        clean_stale_temp(parent)
        tmp = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=parent)
        os.chmod(tmp, 0o777 & ~umask())
    except OSError as exc:
        raise ParameterError(argument, f"{argument}: cannot write {output!r}: {exc.strerror or exc}") from None
    try:
        yield tmp
        written = sorted(os.listdir(tmp))
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in written))
        follow_umask(tmp)
        if not overwrite and os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
            raise OSError(errno.EEXIST, "appeared meanwhile")
        check_output_free(output, overwrite, argument=argument, inputs=inputs)  # it may have changed meanwhile
        if overwrite and os.path.isdir(output) and os.listdir(output):
            kept = users_entries(output)
            clash = sorted(set(kept) & set(written))
            if clash:
                raise ParameterError(
                    argument,
                    f"{argument}: {os.path.join(output, clash[0])!r} is not from an earlier save, and this save "
                    "writes the same name; nothing replaced",
                )
            old = tempfile.mkdtemp(prefix=f"{OLD_PREFIX}{os.getpid()}-", dir=parent)
            previous = os.path.join(old, "model")
            os.replace(output, previous)
            moved: list[str] = []
            try:
                for name in kept:  # the user's own files go into the new folder, untouched
                    os.rename(os.path.join(previous, name), os.path.join(tmp, name))
                    moved.append(name)
                os.rename(tmp, output)
            except OSError:
                with contextlib.suppress(OSError):
                    for name in moved:
                        os.rename(os.path.join(tmp, name), os.path.join(previous, name))
                    os.rename(previous, output)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, output)  # fails on a non-empty folder: nothing another process wrote is replaced
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise ParameterError(
                argument,
                f"{argument}: {output!r} was written by another process while this one ran; nothing replaced, this "
                "run's model was not saved",
            ) from None
        raise ParameterError(argument, f"{argument}: cannot write {output!r}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def users_entries(folder: str) -> list[str]:
    """The top-level names in ``folder`` that no save of ours wrote (its :data:`MANIFEST`, else the known names)."""
    names = sorted(os.listdir(folder))
    manifest = os.path.join(folder, MANIFEST)
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as f:
            ours = {line.strip() for line in f if line.strip()} | {MANIFEST}
        return [name for name in names if name not in ours]
    return [name for name in names if not WRITTEN_BEFORE_MANIFESTS.fullmatch(name) and not name.startswith(".")]


def write_file_atomic(path: str, data: bytes, overwrite: bool = False, argument: str = "path") -> None:
    """Write ``data`` to ``path`` through a temporary file beside it; exclusive unless ``overwrite``.

    Without ``overwrite`` an existing ``path`` is refused, also one that another process created meanwhile (the
    temporary file is linked into place, which fails if the name exists). A failed write (a full disk) leaves no
    temporary file behind and names the path in one line.
    """
    if os.path.isdir(path):
        raise ParameterError(argument, f"{argument}: {path!r} is a folder")
    if os.path.exists(path) and not overwrite:
        raise ParameterError(argument, f"{argument}: {path!r} exists; pass overwrite=True to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        raise ParameterError(
            argument, f"{argument}: {path!r} was created by another process meanwhile; not replaced"
        ) from None
    except OSError as exc:
        raise ParameterError(argument, f"{argument}: cannot write {path!r}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def allocate(path: str, argument: str = "output") -> None:
    """Reserve the disk blocks of the (sparse) file ``path`` now, so that writing through a memory map cannot die.

    A memory-mapped ``.npy`` (``np.lib.format.open_memmap``) is created sparse: on a full disk the first write to an
    unbacked page kills the process with SIGBUS and no message. Reserving the blocks up front turns that into one
    line naming the file, before any work; the caller removes the file.
    """
    try:
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.path.getsize(path))
        finally:
            os.close(fd)
    except OSError as exc:
        raise ParameterError(argument, f"{argument}: cannot write {path!r}: {exc.strerror or exc}") from None


def check_free_space(path: str, needed: int, argument: str = "output") -> None:
    """Refuse, before any work, a destination whose file system has less than ``needed`` bytes free."""
    free = shutil.disk_usage(nearest_existing(path)).free
    if free < needed:
        raise ParameterError(
            argument,
            f"{argument}: {path!r} needs about {needed / 1e6:.0f} MB, but its file system has "
            f"{free / 1e6:.0f} MB free",
        )
