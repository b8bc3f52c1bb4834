"""Shared save/load for st_matryoshka modules: a JSON config mirroring the constructor plus safetensors weights."""

from __future__ import annotations

import json
import os
from typing import Any

from sentence_transformers.base.modules import Module

try:
    from typing import Self
except ImportError:  # Python 3.10
    from typing_extensions import Self


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

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        if not safe_serialization:
            raise ValueError(f"safe_serialization must be True for {type(self).__name__}, got {safe_serialization!r}")
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=True)

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
        module = cls(**config)
        if cls.load_file_path(model_name_or_path, filename="model.safetensors", **hub_kwargs) is None:
            raise ValueError(f"{cls.__name__} in {model_name_or_path!r} has no model.safetensors")
        return cls.load_torch_weights(model_name_or_path, model=module, **hub_kwargs)
