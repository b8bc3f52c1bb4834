"""Shared save/load for st_matryoshka modules: a JSON config mirroring the constructor plus safetensors weights."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from typing import Any

from sentence_transformers.base.modules import Module

try:
    from typing import Self
except ImportError:  # Python 3.10
    from typing_extensions import Self


logger = logging.getLogger(__name__)

MODEL_METADATA_FILE = "st_matryoshka.json"
"""The model-level metadata file (``st_matryoshka.metadata.METADATA_FILE``; this layer cannot import that module)."""


def _writer_version(model_name_or_path: str) -> str:
    """The st_matryoshka version recorded in the model's ``st_matryoshka.json``, or ``(unknown version)``."""
    try:
        with open(os.path.join(model_name_or_path, "st_matryoshka.json"), encoding="utf-8") as f:
            return str(json.load(f).get("st_matryoshka_version") or "(unknown version)")
    except (OSError, ValueError, AttributeError):
        return "(unknown version)"


class StMatryoshkaModule(Module):
    """Base class: ``config_keys`` mirror the constructor, weights and buffers go to ``model.safetensors``.

    Subclasses declare ``config_keys`` (JSON primitives only) and implement ``forward`` and
    ``get_embedding_dimension``. Saving writes ``config.json`` and ``model.safetensors``; loading rebuilds the module
    from the config and loads every parameter and persistent buffer strictly (a missing or extra tensor is an error).
    """

    matryoshka_metadata: Any = None
    """The model's st_matryoshka metadata, set by training and loading.

    A :class:`~st_matryoshka.metadata.MatryoshkaMetadata`, or the dict read from ``st_matryoshka.json`` when the model
    was loaded. With it, Sentence-Transformers' own ``model.save(path)`` / ``save_pretrained`` writes
    ``path/st_matryoshka.json`` too (:meth:`save`), so the folder is complete, as model2vec's ``StaticModel`` writes
    its own.
    """

    config_defaults: dict[str, Any] = {}
    """Config keys added after a release, each with the default that keeps that release's behaviour. A key at its
    default is not written, so a model saved with defaults loads in releases that predate the key (they refuse
    unknown keys), as Sentence-Transformers' ``Dense`` omits ``use_residual``. Such a default never changes."""

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        for key, default in self.config_defaults.items():
            if key in config and type(config[key]) is type(default) and config[key] == default:
                del config[key]
        return config

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        if not safe_serialization:
            raise ValueError(f"safe_serialization must be True for {type(self).__name__}, got {safe_serialization!r}")
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=True)
        self.save_model_metadata(output_path)

    def save_model_metadata(self, output_path: str) -> None:
        """Write ``matryoshka_metadata`` as the model folder's ``st_matryoshka.json``, with a one-line warning.

        A model holding this module in place of its native form (:func:`st_matryoshka.load_model`'s result, which
        can continue training) saved with Sentence-Transformers' own ``save`` names this package's class in
        ``modules.json``; the warning says so and how to write the native folder instead.

        Only while this module is being saved inside a SentenceTransformer folder (``<folder>/<idx>_<Class>``, the
        folder already holding ``config_sentence_transformers.json``); a module saved on its own writes nothing here.

        The file is written to a temporary name in the folder and moved into place, so it is whole or absent.
        """
        output_path = os.path.normpath(os.path.abspath(output_path))
        folder = os.path.dirname(output_path)
        inside_model = re.fullmatch(rf"\d+_{type(self).__name__}", os.path.basename(output_path))
        if not inside_model or not os.path.isfile(os.path.join(folder, "config_sentence_transformers.json")):
            return
        logger.warning(
            f"{folder}: saved with the module type {type(self).__name__}, which plain SentenceTransformer loads only "
            "with trust_remote_code; st_matryoshka.surgery.native_model(model).save(path) writes "
            "Sentence-Transformers' own modules"
        )
        meta = self.matryoshka_metadata
        if meta is None:
            return
        data = meta.to_dict() if hasattr(meta, "to_dict") else dict(meta)
        fd, tmp = tempfile.mkstemp(prefix=".st_matryoshka_", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
            os.replace(tmp, os.path.join(folder, MODEL_METADATA_FILE))
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> Self:
        hub_kwargs = {
            "subfolder": subfolder,
            "token": token,
            "cache_folder": cache_folder,
            "revision": revision,
            "local_files_only": local_files_only,
        }
        config = cls.load_config(model_name_or_path, **hub_kwargs)
        unknown = sorted(set(config) - set(cls.config_keys))
        if unknown:
            raise ValueError(
                f"config of {cls.__name__} in {model_name_or_path!r} has unknown keys {unknown}, written by "
                f"st_matryoshka {_writer_version(model_name_or_path)}; upgrade st_matryoshka to load it"
            )
        weights = cls.load_file_path(model_name_or_path, filename="model.safetensors", **hub_kwargs)
        if weights is None:
            raise ValueError(f"{cls.__name__} in {model_name_or_path!r} has no model.safetensors")
        check_config_against_weights(cls, config, weights, model_name_or_path)
        module = cls(**config)
        module = cls.load_torch_weights(model_name_or_path, model=module, **hub_kwargs)
        module.matryoshka_metadata = model_metadata(cls, model_name_or_path, {**hub_kwargs, "subfolder": ""})
        return module


def model_metadata(cls: type, model_name_or_path: str, hub_kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The model folder's (or repo's) ``st_matryoshka.json`` as a dict, or ``None``.

    ``None`` when it has none or it is not JSON (``matryoshka_dims`` reports a damaged file; loading the module does
    not depend on it).
    """
    try:
        path = cls.load_file_path(model_name_or_path, filename=MODEL_METADATA_FILE, **hub_kwargs)
    except Exception:  # noqa: BLE001 - the Hub client raises many types for an absent file
        return None
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_config_against_weights(cls: type, config: dict[str, Any], weights: str, where: str) -> None:
    """Refuse a ``config.json`` whose module would not match ``weights`` (shapes, dtypes), before allocating it.

    The module is built on PyTorch's ``meta`` device (no memory), and its tensors are compared with the safetensors
    header: a config that asks for sizes the weights do not hold (``hidden_dim: 10000000``), or a value of the wrong
    kind, fails in one line naming the config key or tensor instead of allocating gigabytes or raising a traceback.
    """
    import torch
    from safetensors import safe_open

    try:
        with safe_open(weights, framework="pt") as f:
            stored = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for a damaged header
        raise ValueError(f"{weights} is damaged or not a safetensors file: {str(exc).splitlines()[0]}") from None
    # No size or count in a config can exceed what the weights hold: checked before even a meta module is built
    largest = max([len(stored), *(n for shape, _ in stored.values() for n in shape)], default=0)
    for key, value in config.items():
        if isinstance(value, bool) and key.endswith(("_dim", "_layers", "_size")):
            raise ValueError(f"config.json of {cls.__name__} in {where!r}: {key} must be an int, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and value > largest:
            raise ValueError(
                f"config.json of {cls.__name__} in {where!r}: {key}={value} exceeds anything model.safetensors "
                f"holds (largest size {largest}); the config does not belong to these weights"
            )
    try:
        with torch.device("meta"):
            probe = cls(**config)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"config.json of {cls.__name__} in {where!r}: {str(exc).splitlines()[0]}") from None
    floats = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}
    expected = probe.state_dict()
    settings = ", ".join(f"{k}={v!r}" for k, v in config.items() if not isinstance(v, (list, dict)))
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or extra:
        found = [f"missing {missing[:3]}"] * bool(missing) + [f"unexpected {extra[:3]}"] * bool(extra)
        raise ValueError(
            f"config.json of {cls.__name__} in {where!r} ({settings}) does not match model.safetensors: "
            + "; ".join(found)
        )
    for name, tensor in expected.items():
        shape, dtype = stored[name]
        if shape != tuple(tensor.shape):
            raise ValueError(
                f"config.json of {cls.__name__} in {where!r} ({settings}) expects {name} of shape "
                f"{tuple(tensor.shape)}, but model.safetensors holds {shape}"
            )
        if tensor.dtype in floats and dtype not in floats.values():
            raise ValueError(f"model.safetensors in {where!r}: {name} has dtype {dtype}, expected a float tensor")
