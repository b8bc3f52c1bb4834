"""Every st_matryoshka adaptor as Sentence-Transformers' own modules (``Normalize``, ``Dense``), exactly.

A saved model holds only ``sentence_transformers`` module types, so plain ``SentenceTransformer(path)`` loads it
without ``trust_remote_code`` and without this package, and so do the Hub, MTEB's loader and serving engines that
read stacked ``Dense`` modules. The residual MLP folds because, for GELU, SiLU and ReLU, ``act(u) − act(−u) = u``:
a ``Dense`` with rows ``[I; −I; W₁A]`` and the adaptor's own activation carries the input ``x`` as the pair
``(act(x), act(−x))`` beside the hidden layer ``act(W₁Ax + …)``, and a linear ``Dense`` ``[A, −A, W₂]`` adds them
up: ``ê = A x + a + W₂ act(W₁(A x + a) + b₁) + b₂`` with ``A x + a = R (x − c)``. Deeper MLPs chain the same way.
Tanh carries ``x`` as ``tanh(εx)/ε`` (ε = 1e-4: off by at most ε²|x|³/3 ≈ 3e-9 for a unit vector), so a model
whose ``Dense`` modules all use Tanh or Identity (what text-embeddings-inference serves) is within 1e-6.
Rotation, centring, SMEC's selection and stages, bit thresholds and the code guard's base block are linear and fold
into the same ``Dense`` modules. :func:`native_modules` checks its result against the module on random inputs and
refuses to return anything further than :data:`TOLERANCE` from it.

The trainable module itself is saved beside the ``Dense`` modules (:data:`RECORD_FOLDER`, ignored by plain
Sentence-Transformers), so :func:`st_matryoshka.load_model` gives back exactly the module that was trained.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from sentence_transformers.base.modules import Dense
from sentence_transformers.sentence_transformer.modules import Normalize
from torch import nn

from st_matryoshka.models import MatryoshkaAdaptor, SMECAdaptor

TOLERANCE = 1e-5
"""Largest difference allowed between a module's output and its native form's, at any coordinate."""

TANH_CARRY = 1e-4
"""ε for carrying the input through Tanh as ``tanh(εx)/ε``."""

RECORD_FOLDER = "st_matryoshka_adaptor"
"""Sub-folder of a saved model holding the trainable module (``config.json``, ``model.safetensors``) and
``record.json`` (its class and the ``modules.json`` indices of the modules it was folded into)."""

RECORD_FILE = "record.json"

RECORD_CLASSES: dict[str, type[MatryoshkaAdaptor]] = {
    f"{cls.__module__}.{cls.__name__}": cls for cls in (MatryoshkaAdaptor, SMECAdaptor)
}


@dataclass
class TrainableRecord:
    """The trainable module of a native model and the positions (in the model's modules) of its native form."""

    module: MatryoshkaAdaptor
    indices: list[int]


def _dense(weight: torch.Tensor, bias: torch.Tensor | None, activation: nn.Module | None = None) -> Dense:
    out_features, in_features = weight.shape
    return Dense(
        in_features,
        out_features,
        bias=bias is not None,
        activation_function=activation,
        init_weight=weight.to(torch.float32).contiguous().clone(),
        init_bias=None if bias is None else bias.to(torch.float32).contiguous().clone(),
    )


def _carry(activation: str, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(enc, dec)``: ``x`` enters a layer as ``enc @ x`` and ``dec @ act(enc @ x)`` gives it back."""
    eye = torch.eye(width, dtype=torch.float64)
    if activation == "tanh":
        return TANH_CARRY * eye, eye / TANH_CARRY
    return torch.cat([eye, -eye]), torch.cat([eye, -eye], dim=1)


@torch.no_grad()
def native_modules(adaptor: MatryoshkaAdaptor) -> list[nn.Module]:
    """ST modules (``Normalize``, ``Dense``) computing what ``adaptor`` computes in eval mode.

    Args:
        adaptor: A :class:`~st_matryoshka.models.MatryoshkaAdaptor` (any depth, activation and option) or
            :class:`~st_matryoshka.models.SMECAdaptor`.

    Returns:
        ``[Normalize?, Dense, ..., Dense]`` (one ``Dense`` for a linear adaptor, ``num_layers + 1`` otherwise; an SMEC
        adaptor with ``normalize_output`` ends ``Normalize, Dense``). Each output is within :data:`TOLERANCE` of
        the adaptor's (checked here on random inputs).

    Raises:
        ValueError: if the native form is further than :data:`TOLERANCE` from the module, or the adaptor has an
            option no native form computes.

    Example:
        ::

            import torch
            from st_matryoshka.models import MatryoshkaAdaptor
            from st_matryoshka.native import native_modules

            adaptor = MatryoshkaAdaptor(8, num_layers=1).eval()
            print([type(m).__name__ for m in native_modules(adaptor)])
            # => ['Normalize', 'Dense', 'Dense']
    """
    check_finite(adaptor)
    smec = isinstance(adaptor, SMECAdaptor)
    if smec and (adaptor.base_block or adaptor.bit_thresholds):
        raise ValueError("an SMECAdaptor with base_block or bit_thresholds has no native form")
    was_training = adaptor.training
    adaptor.eval()
    try:
        modules = _fold(adaptor, smec)
        check_native(adaptor, modules)
    finally:
        adaptor.train(was_training)
    return modules


def _fold(adaptor: MatryoshkaAdaptor, smec: bool) -> list[nn.Module]:
    dim = adaptor.embedding_dim
    f64 = torch.float64
    eye = torch.eye(dim, dtype=f64)
    # z = A x + a: the fixed rotation and centring
    rotation = adaptor.rotation.to(f64) if adaptor.use_rotation else eye
    center = adaptor.center.to(f64) if adaptor.center_input else torch.zeros(dim, dtype=f64)
    matrix_a, shift_a = rotation, -(rotation @ center)
    linears = [m for m in adaptor.residual if isinstance(m, nn.Linear)]
    weights = [m.weight.to(f64) for m in linears]
    biases = [m.bias.to(f64) for m in linears]
    modules: list[nn.Module] = [Normalize()] if adaptor.normalize_input else []
    if adaptor.num_layers == 0:
        # ê = (I + W)(A x + a) + b
        final_w = (eye + weights[0]) @ matrix_a
        final_b = (eye + weights[0]) @ shift_a + biases[0]
        x_rows = eye  # x itself, as a linear map of the final Dense's input
    else:
        enc, dec = _carry(adaptor.activation, dim)
        carried = enc.shape[0]
        activation = type(adaptor.residual[1])  # the adaptor's own activation class
        first_w = torch.cat([enc, weights[0] @ matrix_a])
        first_b = torch.cat([torch.zeros(carried, dtype=f64), weights[0] @ shift_a + biases[0]])
        modules.append(_dense(first_w, first_b, activation()))
        for weight, bias in zip(weights[1:-1], biases[1:-1]):
            hidden_in, hidden_out = weight.shape[1], weight.shape[0]
            block = torch.zeros(carried + hidden_out, carried + hidden_in, dtype=f64)
            block[:carried, :carried] = enc @ dec
            block[carried:, carried:] = weight
            modules.append(_dense(block, torch.cat([torch.zeros(carried, dtype=f64), bias]), activation()))
        # ê = A (dec · carried) + a + W h + b
        final_w = torch.cat([matrix_a @ dec, weights[-1]], dim=1)
        final_b = shift_a + biases[-1]
        x_rows = torch.cat([dec, torch.zeros(dim, weights[-1].shape[1], dtype=f64)], dim=1)
    if smec:
        stages = adaptor.stage_matrix().to(f64)
        if adaptor.normalize_output:
            return [*modules, _dense(final_w, final_b), Normalize(), _dense(stages, None)]
        return [*modules, _dense(stages @ final_w, stages @ final_b)]
    if adaptor.bit_thresholds:
        final_b = final_b - adaptor.thresholds.to(f64)
    if adaptor.base_block:
        start = dim - adaptor.base_block
        final_w[start:] = x_rows[start:]
        final_b[start:] = -adaptor.base_center.to(f64)
    return [*modules, _dense(final_w, final_b)]


def non_finite_tensor(module: nn.Module) -> str | None:
    """The name of the first weight or buffer of ``module`` holding NaN or infinity, or ``None``."""
    for name, tensor in module.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def check_finite(adaptor: nn.Module, where: str = "") -> None:
    """Refuse an adaptor with a NaN or infinite weight or buffer, naming the tensor (and ``where`` it came from)."""
    name = non_finite_tensor(adaptor)
    if name is not None:
        place = f" in {where}" if where else ""
        raise ValueError(f"{type(adaptor).__name__}: tensor {name}{place} holds NaN or infinity")


@torch.no_grad()
def check_native(adaptor: MatryoshkaAdaptor, modules: Sequence[nn.Module], samples: int = 512) -> float:
    """The largest difference between ``adaptor`` and ``modules`` on random inputs; raises above :data:`TOLERANCE`.

    Inputs are Gaussian rows at norms from 0.1 to 10 (a pooled backbone vector is not unit length), in eval mode. A
    row's difference is measured against its output's scale (divided by ``max(1, ‖output‖)``): float32 keeps about
    seven digits, so an adaptor without input normalisation whose outputs have norm 10 is held to 1e-4 absolute.
    """
    generator = torch.Generator().manual_seed(0)
    dim = adaptor.embedding_dim
    device = adaptor.rotation.device
    x = torch.nn.functional.normalize(torch.randn(samples, dim, generator=generator), dim=-1)
    x = x * torch.logspace(-1, 1, samples).unsqueeze(1)
    x = x.to(device)
    expected = adaptor({"sentence_embedding": x.clone()})["sentence_embedding"]
    features = {"sentence_embedding": x.clone()}
    for module in modules:
        module.to(device).eval()
        features = module(features)
    scale = expected.norm(dim=-1, keepdim=True).clamp_min(1.0)
    difference = float(((features["sentence_embedding"] - expected).abs() / scale).max())
    if not difference <= TOLERANCE:  # NaN fails too
        raise ValueError(
            f"{type(adaptor).__name__}: its native form differs from it by {difference:.2e} "
            f"(more than {TOLERANCE:g}); not saved in native form"
        )
    return difference


def save_record(folder: str, record: TrainableRecord) -> None:
    """Write ``record`` into ``folder/`` :data:`RECORD_FOLDER` (the module's own save, plus ``record.json``)."""
    path = os.path.join(folder, RECORD_FOLDER)
    os.makedirs(path, exist_ok=True)
    record.module.save(path)
    cls = type(record.module)
    with open(os.path.join(path, RECORD_FILE), "w", encoding="utf-8") as f:
        json.dump({"type": f"{cls.__module__}.{cls.__name__}", "modules": list(record.indices)}, f, indent=2)


def load_record(folder: str, argument: str = "model") -> TrainableRecord | None:
    """The :class:`TrainableRecord` saved in ``folder`` by :func:`save_record`, or ``None`` when it has none.

    Raises:
        ValueError: one line naming the file and key when the record is damaged or names a class that is not
            st_matryoshka's.
    """
    path = os.path.join(folder, RECORD_FOLDER)
    record_file = os.path.join(path, RECORD_FILE)
    if not os.path.isfile(record_file):
        return None
    try:
        with open(record_file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{argument}: {record_file} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{argument}: {record_file} must hold an object with 'type' and 'modules'")
    cls = RECORD_CLASSES.get(data.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(
            f"{argument}: {record_file}: 'type' must be one of {sorted(RECORD_CLASSES)}, got {data.get('type')!r}"
        )
    indices = data.get("modules")
    if not isinstance(indices, list) or not indices or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices
    ):
        raise ValueError(f"{argument}: {record_file}: 'modules' must be a non-empty list of indices, got {indices!r}")
    if indices != list(range(indices[0], indices[0] + len(indices))):
        raise ValueError(f"{argument}: {record_file}: 'modules' must be consecutive indices, got {indices!r}")
    module = cls.load(path).eval()
    check_finite(module, os.path.join(path, "model.safetensors"))
    return TrainableRecord(module, indices)


def fold_modules(modules: Sequence[nn.Module]) -> tuple[list[nn.Module], TrainableRecord | None]:
    """``modules`` with the one st_matryoshka adaptor among them replaced by its native form, and its record.

    A list without an adaptor comes back unchanged with ``None``.

    Raises:
        ValueError: for more than one adaptor, or a module of this package that has no native form.
    """
    found = [i for i, m in enumerate(modules) if isinstance(m, MatryoshkaAdaptor)]
    others = [
        type(m).__name__
        for m in modules
        if type(m).__module__.startswith("st_matryoshka.") and not isinstance(m, MatryoshkaAdaptor)
    ]
    if others:
        raise ValueError(f"model: {', '.join(others)} has no native form (it is not an adaptor)")
    if not found:
        return list(modules), None
    if len(found) > 1:
        raise ValueError(f"model: holds {len(found)} adaptors; one is folded into native modules")
    index = found[0]
    adaptor = modules[index]
    native = native_modules(adaptor)  # type: ignore[arg-type]
    folded = [*modules[:index], *native, *modules[index + 1 :]]
    return folded, TrainableRecord(adaptor, list(range(index, index + len(native))))  # type: ignore[arg-type]


def unfold_modules(modules: Sequence[nn.Module], record: TrainableRecord, argument: str = "model") -> list[nn.Module]:
    """``modules`` (a native model's) with ``record.indices`` replaced by the trainable module, checked equal.

    Raises:
        ValueError: when the modules at those positions do not compute what the module computes (the folder was
            edited after saving), naming the positions.
    """
    indices = record.indices
    if indices[-1] >= len(modules):
        raise ValueError(
            f"{argument}: {RECORD_FOLDER}/{RECORD_FILE} names modules {indices}, the model has {len(modules)}"
        )
    try:
        check_native(record.module, [modules[i] for i in indices])
    except ValueError as exc:
        raise ValueError(
            f"{argument}: modules {indices} do not compute what {RECORD_FOLDER}/ holds ({exc}); the folder was "
            "changed after saving"
        ) from None
    return [*modules[: indices[0]], record.module, *modules[indices[-1] + 1 :]]
