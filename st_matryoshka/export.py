"""Hub-ready model folders: fold st_matryoshka modules into Sentence-Transformers' own modules where the maths allows.

A model whose adaptors are all linear (``num_layers=0``, e.g. the PCA baseline, Search-Adaptor, SMEC's stages and ADS
selection) becomes a plain ``[Transformer, Pooling, Normalize, Dense, ...]`` model that loads with
``SentenceTransformer(path)``: no ``trust_remote_code``, no st_matryoshka install. A non-linear adaptor ships as a
self-contained module file inside the folder (:data:`~st_matryoshka.loading.REMOTE_MODULE` ``.py``, generated from
this package's source), so ``SentenceTransformer(repo, trust_remote_code=True)`` works with only
sentence-transformers installed. :func:`export_model` writes exactly what :func:`push_to_hub` uploads.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Dense
from sentence_transformers.sentence_transformer.modules import Normalize

from st_matryoshka._io import atomic_folder, check_output_free
from st_matryoshka._validation import ParameterError
from st_matryoshka.loading import REMOTE_MODULE, load_model, local_model_folder
from st_matryoshka.metadata import METADATA_FILE, MatryoshkaMetadata
from st_matryoshka.models import MatryoshkaAdaptor, SMECAdaptor
from st_matryoshka.models import base as _base_source
from st_matryoshka.models import matryoshka_adaptor as _adaptor_source

logger = logging.getLogger(__name__)

REPO_ID_PATTERN = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def adaptor_to_dense(adaptor: MatryoshkaAdaptor) -> list[torch.nn.Module]:
    """ST modules computing exactly what a linear ``adaptor`` computes: ``[Normalize?, Dense]``.

    With ``z = R (normalize(x) − c)`` and ``ê = z + W z + b − t``, the map is ``ê = A · normalize(x) + d`` with
    ``A = (I + W) R`` and ``d = b − t − A c`` (``t``: the bit thresholds, zero without them): one ``Dense`` with
    identity activation, after ST's ``Normalize`` when the adaptor normalises its input. A ``base_block`` makes the
    last rows of ``A`` those of the identity and of ``d`` minus ``base_center``.

    Raises:
        ValueError: if the adaptor has hidden layers (``num_layers > 0``), which no Dense can express.
    """
    if adaptor.num_layers != 0:
        raise ValueError(f"only linear adaptors (num_layers=0) fold into Dense, got num_layers={adaptor.num_layers}")
    dim = adaptor.embedding_dim
    with torch.no_grad():
        linear = adaptor.residual[-1]
        rotation = adaptor.rotation if adaptor.use_rotation else torch.eye(dim)
        matrix = (torch.eye(dim) + linear.weight) @ rotation
        center = adaptor.center if adaptor.center_input else torch.zeros(dim)
        bias = linear.bias - matrix @ center
        if adaptor.bit_thresholds:
            bias = bias - adaptor.thresholds
        if adaptor.base_block:
            start = dim - adaptor.base_block
            matrix[start:] = torch.eye(dim)[start:]
            bias[start:] = -adaptor.base_center
    dense = Dense(dim, dim, bias=True, activation_function=None, init_weight=matrix.clone(), init_bias=bias.clone())
    return [Normalize(), dense] if adaptor.normalize_input else [dense]


def stages_to_dense(adaptor: SMECAdaptor) -> Dense:
    """ST's ``Dense`` computing an SMEC adaptor's selection and rotation stages: ``y ↦ M y`` (no bias).

    ``M`` is the fixed orthogonal matrix of all stages at inference (:meth:`SMECAdaptor.stage_matrix`): ADS'
    deterministic top-k is a permutation, so it is a linear map like the rotations.
    """
    matrix = adaptor.stage_matrix()
    dim = adaptor.embedding_dim
    return Dense(dim, dim, bias=False, activation_function=None, init_weight=matrix.clone())


def smec_to_st_modules(adaptor: SMECAdaptor) -> list[torch.nn.Module]:
    """Modules computing what ``adaptor`` computes, with the stages as ST's ``Dense``.

    A linear body (``num_layers=0``) becomes ST modules only: ``[Normalize?, Dense, Normalize, Dense]`` (one
    ``Dense`` without ``normalize_output``). Otherwise the body stays an st_matryoshka :class:`MatryoshkaAdaptor`
    (:meth:`SMECAdaptor.body`) followed by ``Normalize`` and the stages' ``Dense``.

    Example:
        ::

            modules = smec_to_st_modules(adaptor)  # [MatryoshkaAdaptor, Dense] for an MLP body
    """
    body = adaptor.body().eval()
    stages = stages_to_dense(adaptor)
    between = [Normalize()] if adaptor.normalize_output else []
    if adaptor.num_layers != 0:
        return [body, *between, stages]
    if between:
        return [*adaptor_to_dense(body), *between, stages]
    *normalize, dense = adaptor_to_dense(body)
    with torch.no_grad():
        matrix = stages.linear.weight @ dense.linear.weight
        bias = stages.linear.weight @ dense.linear.bias
    dim = adaptor.embedding_dim
    folded = Dense(dim, dim, bias=True, activation_function=None, init_weight=matrix.clone(), init_bias=bias.clone())
    return [*normalize, folded]


def to_hub_modules(model: SentenceTransformer, keep_non_linear: bool = True) -> list[torch.nn.Module]:
    """``model``'s modules with every linear part folded into ST's own.

    A non-linear MatryoshkaAdaptor (an SMEC model's MLP body included) stays as it is with ``keep_non_linear``;
    without it, a plain non-linear MatryoshkaAdaptor is an error (:func:`adaptor_to_dense`).
    """
    modules: list[torch.nn.Module] = []
    for module in model:
        if isinstance(module, SMECAdaptor):
            modules.extend(smec_to_st_modules(module))
        elif isinstance(module, MatryoshkaAdaptor):
            keep = keep_non_linear and module.num_layers != 0
            modules.extend([module] if keep else adaptor_to_dense(module))
        elif type(module).__module__.startswith("st_matryoshka."):
            raise ParameterError("model", f"model: {type(module).__name__} cannot be published (it has no Hub form)")
        else:
            modules.append(module)
    return modules


def export_to_st_modules(model: SentenceTransformer) -> SentenceTransformer:
    """A new SentenceTransformer with every MatryoshkaAdaptor of ``model`` replaced by ST-native modules.

    Args:
        model: A model with linear adaptors; an SMEC adaptor with an MLP body keeps the body as a
            MatryoshkaAdaptor and exports its stages as ``Dense``.

    Returns:
        A model with the same outputs (up to float rounding) built only from ``sentence_transformers`` modules.

    Example:
        ::

            native = export_to_st_modules(model)  # model trained with --method pca
            native.save("runs/pca-native")
            SentenceTransformer("runs/pca-native").encode(["text"], truncate_dim=48)
    """
    from st_matryoshka.surgery import rebuild

    return rebuild(model, to_hub_modules(model, keep_non_linear=False))


def remote_module_source() -> str:
    """The self-contained ``st_matryoshka_modules.py`` shipped with a non-linear adaptor: this package's own source.

    The file is this package's ``models/base.py`` and ``models/matryoshka_adaptor.py`` joined, with the imports between
    them removed, so it defines the same ``MatryoshkaAdaptor`` (same config keys, same weights, same outputs) and needs
    only torch and sentence-transformers. It is generated at export time and never edited, so it cannot drift.
    """
    parts = []
    for module in (_base_source, _adaptor_source):
        lines = inspect.getsource(module).splitlines()
        kept = [
            line
            for line in lines
            if not line.startswith("from st_matryoshka.") and line != "from __future__ import annotations"
        ]
        parts.append(f"# ---- from {module.__name__} ----\n" + "\n".join(kept).strip() + "\n")
    from st_matryoshka._version import __version__

    header = (
        f'"""st_matryoshka {__version__} modules for Sentence-Transformers, generated from the package source.\n\n'
        "Loaded by ``SentenceTransformer(repo, trust_remote_code=True)`` when st_matryoshka is not installed; with\n"
        "st_matryoshka installed, ``st_matryoshka.loading.load_model(repo)`` uses the package instead of this file.\n"
        '"""\n\nfrom __future__ import annotations\n\n'
    )
    return header + "\n\n".join(parts)


def check_repo_id(repo_id: str | None, argument: str = "repo_id") -> None:
    if repo_id is not None and not REPO_ID_PATTERN.fullmatch(repo_id):
        raise ParameterError(argument, f"{argument} must look like 'org/name', got {repo_id!r}")
    if repo_id is not None and any(len(part) > 96 for part in repo_id.split("/")):
        raise ParameterError(
            argument, f"{argument}: the Hub caps an org and a name at 96 characters each, got {repo_id!r}"
        )


def check_default_dim(meta: MatryoshkaMetadata, default_dim: int | None) -> None:
    if default_dim is not None and default_dim not in meta.dims:
        raise ParameterError(
            "default_dim", f"default_dim must be one of the trained dims {meta.dims}, got {default_dim!r}"
        )


def _metadata_of(model: SentenceTransformer | None, folder: str | None) -> MatryoshkaMetadata:
    meta = getattr(getattr(model, "model_card_data", None), "matryoshka", None)
    if isinstance(meta, MatryoshkaMetadata):
        return meta
    if folder and os.path.isfile(os.path.join(folder, METADATA_FILE)):
        return MatryoshkaMetadata.load(folder)
    raise ValueError(
        f"model: no {METADATA_FILE} found; export needs a model trained by st_matryoshka (or its metadata file)"
    )


def export_model(
    model: SentenceTransformer | str,
    output: str,
    repo_id: str | None = None,
    default_dim: int | None = None,
    license: str | None = None,
    overwrite: bool = False,
    trust_remote_code: bool = False,
) -> SentenceTransformer:
    """Write the Hub-ready folder of a trained model: exactly what :func:`push_to_hub` uploads.

    Linear parts fold into ST's ``Dense``/``Normalize``; a non-linear adaptor is saved with its module file
    (``st_matryoshka_modules.py``, :func:`remote_module_source`) and ``modules.json`` names that file's class. The
    folder also holds ``st_matryoshka.json`` (trained dims, scores), the model card (``README.md``) and, when the
    model was evaluated, the per-dim plot. The local training record (``st_matryoshka_training.json``, with local
    paths) is not exported.

    Args:
        model: A trained model or its folder.
        output: The folder to write (refused when it holds files, unless ``overwrite``).
        repo_id: ``org/name`` the card's usage snippet and model id name.
        default_dim: One of the trained dims, saved as ST's ``truncate_dim``: ``encode`` returns that size by default.
        license: Licence identifier for the card (default: the one in the model's metadata, if any).
        overwrite: Replace a folder that holds files.
        trust_remote_code: For a folder or repo id: allow code shipped in it to run while loading (never needed for
            st_matryoshka's own models).

    Returns:
        The exported model (its modules as written).

    Example:
        ::

            from st_matryoshka.export import export_model

            export_model("runs/scifact", "runs/scifact-hub", repo_id="me/minilm-scifact-matryoshka", default_dim=96)
    """
    from st_matryoshka.model_card import PLOT_FILE, MatryoshkaModelCardData, plot_frontiers, plot_scores
    from st_matryoshka.surgery import rebuild

    check_repo_id(repo_id)
    check_output_free(output, overwrite, argument="output", inputs=[model] if isinstance(model, str) else [])
    if isinstance(model, str):
        folder = local_model_folder(model)
        meta = _metadata_of(None, folder)
        check_default_dim(meta, default_dim)
        model = load_model(folder, trust_remote_code=trust_remote_code)
    else:
        meta = _metadata_of(model, None)
    if default_dim is not None:
        check_default_dim(meta, default_dim)
        meta.default_dim = default_dim
    if license:
        meta.license = license
    modules = to_hub_modules(model)
    needs_remote_code = any(type(m).__module__.startswith("st_matryoshka.") for m in modules)
    meta.repo_id, meta.exported, meta.needs_remote_code = repo_id, True, needs_remote_code
    card = MatryoshkaModelCardData(model_id=repo_id, matryoshka=meta)
    exported = rebuild(model, modules, card)
    exported.truncate_dim = meta.default_dim
    with atomic_folder(output, overwrite=overwrite) as tmp:
        if plot_scores(meta, os.path.join(tmp, PLOT_FILE)):
            card.plot_file = PLOT_FILE
        card.frontier_plots = plot_frontiers(meta, tmp)
        exported.save(tmp, model_name=repo_id)
        if not os.path.isfile(os.path.join(tmp, "README.md")):  # ST logs card errors and carries on; we do not
            raise ValueError("export: the model card could not be rendered (the log above says why); nothing written")
        meta.save(tmp)
        if needs_remote_code:
            _point_modules_at_remote_file(tmp)
    return exported


def _point_modules_at_remote_file(folder: str) -> None:
    """Rewrite ``modules.json`` types of st_matryoshka classes to the bundled file's classes, and write that file."""
    path = os.path.join(folder, "modules.json")
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    for entry in entries:
        if entry["type"].startswith("st_matryoshka."):
            entry["type"] = f"{REMOTE_MODULE}.{entry['type'].rsplit('.', 1)[1]}"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=2)
    with open(os.path.join(folder, f"{REMOTE_MODULE}.py"), "w", encoding="utf-8") as f:
        f.write(remote_module_source())


def push_to_hub(
    model: str,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    default_dim: int | None = None,
    license: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Export ``model`` (:func:`export_model`) to a temporary folder and upload that folder to ``repo_id``.

    The upload goes through Sentence-Transformers' ``push_to_hub`` (``huggingface_hub``'s ``create_repo`` and
    ``upload_folder``, one commit). Without a token (``token``, ``HF_TOKEN`` or ``huggingface-cli login``) nothing
    is exported or uploaded.

    Returns:
        The commit URL.

    Example:
        ::

            from st_matryoshka.export import push_to_hub

            push_to_hub("runs/scifact", "me/minilm-scifact-matryoshka", private=True)
    """
    import tempfile

    from huggingface_hub import get_token
    from huggingface_hub.errors import HfHubHTTPError

    # huggingface_hub's HTTP client's own error base (connection refused, timeouts), whichever client it uses
    transport_errors = (OSError, HfHubHTTPError, *HfHubHTTPError.__bases__)

    check_repo_id(repo_id)
    token = token or get_token()
    if not token:
        raise ValueError("push: no Hugging Face token; run `hf auth login` or set HF_TOKEN (nothing was uploaded)")
    with tempfile.TemporaryDirectory(prefix="st_matryoshka-push-") as work:
        folder = os.path.join(work, "model")
        exported = export_model(model, folder, repo_id=repo_id, default_dim=default_dim, license=license)
        try:
            return exported.push_to_hub(
                repo_id,
                token=token,
                private=private,
                local_model_path=folder,
                exist_ok=True,
                revision=revision,
                commit_message=commit_message
                or f"Upload {os.path.basename(os.path.normpath(model))} with st_matryoshka",
            )
        except transport_errors as exc:  # no network, refused, rate-limited, offline mode
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(
                f"push: the Hub could not be reached or refused {repo_id!r} ({reason}); nothing was uploaded"
            ) from None
