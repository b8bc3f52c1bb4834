"""Truncation metadata saved next to a model's modules: the dims it was trained for and its scores at each.

A trained model folder holds ``st_matryoshka.json`` (:data:`METADATA_FILE`), a small file that travels with the model
to the Hub: the method, the base model, the trained dims (the full width first), the default dim, and, once the
model has been evaluated (``st-matryoshka evaluate --record``), its scores per data set, metric and dim next to the
base model's truncation and PCA on the same queries. The model card is rendered from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from st_matryoshka._version import __version__

METADATA_FILE = "st_matryoshka.json"
"""Name of the metadata file in a model folder."""

TRAINING_FILE = "st_matryoshka_training.json"
"""Name of the full training record (stage histories, local paths); kept locally, not uploaded."""

SCORE_METRICS = ("ndcg_at_10", "recall_at_100")
"""Metrics recorded per dim (keys of :func:`st_matryoshka.evaluation.evaluate_per_dim`)."""


@dataclass
class MatryoshkaMetadata:
    """What a trained model records about its dims.

    Args:
        dims: Every dim the model was trained for, descending; the first is the full width.
        default_dim: The size ``SentenceTransformer(...).encode`` returns by default (ST's persisted
            ``truncate_dim``), or ``None`` for the full width.
        method: ``matryoshka-adaptor``, ``smec``, ``pca`` or ``search-adaptor``.
        supervised: Whether a supervised stage ran.
        base_model: The base model's Hub id or name.
        train_data: Name of the training data set (e.g. ``scifact``) and its split for the supervised stage.
        config: Training hyper-parameters.
        selection: For a supervised model, what the guard (:func:`st_matryoshka.engine.interpolate_supervised`)
            chose: the validation split (``validation``: ``both``, ``document-disjoint`` or ``query-hash``;
            ``validation_queries``, ``seen_queries``, ``fallback_reason``), the kept weights ``interpolation`` (``a``
            in ``(1 - a) * unsupervised + a * supervised``; ``kept``: ``unsupervised``, ``interpolated`` or
            ``supervised``) and ``reason``, every grid point's validation NDCG@10 per dim (``grid``) and the end
            points' and kept state's scores per kind. After binary training, ``codes``: what the code guard
            (:func:`st_matryoshka.engine.guard_codes`) kept in the last block of the full-width sign bits and why.
        losses: ``{loss class name: citation}`` of the losses used in training.
        scores: ``{data set: {"model" | "truncation" | "pca": {metric: {dim: value}}}}``, as ``evaluate --record``
            writes them (dims are strings, as in JSON).
        eval_split: ``{data set: qrels split}`` of ``scores``.
        notes: ``{data set: note}`` shown under the data set's table (e.g. overlap between train and test).
        license: The model's licence (Hub identifier), when known.
        repo_id: The Hub repository the model was exported for.
        exported: Whether the folder is a Hub-ready export (``st-matryoshka export``) rather than a training output.
        needs_remote_code: Whether the export ships a module file (loading needs ``trust_remote_code=True``).
        adaptor_class: For a standalone adaptor (``fit-vectors``): the module class saved in the folder.
        int8_ranges: ``{dim: [[low per coordinate], [high per coordinate]]}``: the int8 quantisation ranges of the
            unit-normalised prefix at each trained dim, calibrated on the training corpus
            (:func:`st_matryoshka.quantization.calibrate_int8`); ``evaluate``, ``frontier`` and
            ``apply-vectors`` use them instead of recomputing ranges per batch or per data set.
        int8_calibration: Where ``int8_ranges`` came from: ``{"data": name, "documents": count}`` (and
            ``corpus_documents`` when a larger corpus was calibrated on an evenly spaced sample).
        frontier: ``{data set: {"split": split, "rescore": K or None, "rows": [...]}}``: NDCG@10 against bytes per
            vector of the model, truncation and PCA at every dim × precision, as ``st-matryoshka frontier --record``
            writes it; the card shows each method's Pareto front and plots it.
        st_matryoshka_version: The version of st_matryoshka that wrote the file.
    """

    dims: list[int]
    default_dim: int | None = None
    method: str | None = None
    supervised: bool = False
    base_model: str | None = None
    train_data: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    losses: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    eval_split: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    license: str | None = None
    repo_id: str | None = None
    exported: bool = False
    needs_remote_code: bool = False
    adaptor_class: str | None = None
    int8_ranges: dict[str, list[list[float]]] = field(default_factory=dict)
    int8_calibration: dict[str, Any] = field(default_factory=dict)
    frontier: dict[str, dict[str, Any]] = field(default_factory=dict)
    st_matryoshka_version: str = ""

    def __post_init__(self) -> None:
        dims = list(self.dims)
        if not dims or any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in dims):
            raise ValueError(f"dims must be positive ints, got {self.dims!r}")
        self.dims = sorted(set(dims), reverse=True)
        if self.default_dim is not None and self.default_dim not in self.dims:
            raise ValueError(f"default_dim must be one of the trained dims {self.dims}, got {self.default_dim!r}")
        if not self.st_matryoshka_version:
            self.st_matryoshka_version = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> MatryoshkaMetadata:
        """Build from a saved dict; a key this version does not know is an error naming it and the writer's version."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{source or METADATA_FILE} has unknown keys {unknown}: written by st_matryoshka "
                f"{data.get('st_matryoshka_version', '(unknown version)')}, this is {__version__}; "
                "upgrade st_matryoshka"
            )
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source or METADATA_FILE}: {str(exc).splitlines()[0]}") from None

    def save(self, folder: str) -> None:
        """Write ``folder/st_matryoshka.json`` (to a temporary file, then renamed into place)."""
        path = os.path.join(folder, METADATA_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, folder: str) -> MatryoshkaMetadata:
        path = os.path.join(folder, METADATA_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc.msg})") from None
        except (UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"{path} is not a JSON file ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
        return cls.from_dict(data, source=path)

    def record_scores(
        self, data_name: str, split: str, scores: dict[str, dict[str, dict[str, float]]], note: str | None = None
    ) -> None:
        """Store ``{"model" | "truncation" | "pca": {metric: {dim: value}}}`` for one data set (replacing any).

        Only :data:`SCORE_METRICS` are kept (a result may carry more, e.g. ``bytes_per_vector``).
        """
        self.scores[data_name] = {kind: {m: dict(by[m]) for m in SCORE_METRICS} for kind, by in scores.items()}
        self.eval_split[data_name] = split
        if note:
            self.notes[data_name] = note
        else:
            self.notes.pop(data_name, None)


def version_of_folder(folder: str) -> str | None:
    """The st_matryoshka version recorded in ``folder``'s metadata file, if there is one."""
    path = os.path.join(folder, METADATA_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("st_matryoshka_version")
    except (OSError, ValueError, AttributeError):
        return None


def matryoshka_dims(model_or_path_or_repo_id: Any, revision: str | None = None) -> MatryoshkaMetadata:
    """The trained dims (and recorded scores) of a model: a folder, a Hub repo id or a loaded SentenceTransformer.

    A repo id is read through ``huggingface_hub`` (from the local Hub cache when ``HF_HUB_OFFLINE=1``). A loaded model
    is read from the folder it was loaded from, or, for a model built in memory, from the card data that training
    attached to it.

    Args:
        model_or_path_or_repo_id: Model folder, ``org/name`` repo id, or SentenceTransformer.
        revision: Hub revision for a repo id.

    Returns:
        The model's :class:`MatryoshkaMetadata`; ``.dims`` lists the trained dims, full width first.

    Raises:
        ValueError: if the model has no st_matryoshka metadata.

    Example:
        ::

            from st_matryoshka import matryoshka_dims

            info = matryoshka_dims("runs/scifact")
            print(info.dims, info.scores["scifact"]["model"]["ndcg_at_10"]["48"])
            # => [384, 192, 96, 48, 24] 0.63...
    """
    source = model_or_path_or_repo_id
    if not isinstance(source, (str, os.PathLike)):
        card = getattr(source, "model_card_data", None)
        metadata = getattr(card, "matryoshka", None)
        if isinstance(metadata, MatryoshkaMetadata):
            return metadata
        for module in source if hasattr(source, "__iter__") else []:  # carried by our module (training, loading)
            metadata = getattr(module, "matryoshka_metadata", None)
            if isinstance(metadata, MatryoshkaMetadata):
                return metadata
            if isinstance(metadata, dict):
                return MatryoshkaMetadata.from_dict(metadata, source="the model's st_matryoshka.json")
        raise ValueError(f"model_or_path_or_repo_id: {type(source).__name__} carries no st_matryoshka metadata")
    source = os.fspath(source)
    if os.path.isdir(source):
        if not os.path.isfile(os.path.join(source, METADATA_FILE)):
            raise ValueError(f"model_or_path_or_repo_id: {source!r} has no {METADATA_FILE}")
        return MatryoshkaMetadata.load(source)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError

    try:
        path = hf_hub_download(source, METADATA_FILE, revision=revision)
    except (EntryNotFoundError, HFValidationError, LocalEntryNotFoundError, OSError) as exc:
        raise ValueError(
            f"model_or_path_or_repo_id: {source!r} is not a local folder, and its {METADATA_FILE} was not found on "
            f"the Hub ({type(exc).__name__})"
        ) from None
    return MatryoshkaMetadata.load(os.path.dirname(path))
