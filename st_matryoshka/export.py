"""Hub-ready model folders: the trained model as Sentence-Transformers' own modules, with its card.

Every st_matryoshka adaptor folds exactly into ST's ``Normalize`` and ``Dense`` (:mod:`st_matryoshka.native`), so an
exported model loads with ``SentenceTransformer(path_or_repo_id)``: no ``trust_remote_code``, no st_matryoshka
install. :func:`export_model` writes exactly what :func:`push_to_hub` uploads.
"""

from __future__ import annotations

import logging
import os
import re

from sentence_transformers import SentenceTransformer

from st_matryoshka._io import atomic_folder, check_output_free
from st_matryoshka._validation import ParameterError
from st_matryoshka.loading import load_model, local_model_folder
from st_matryoshka.metadata import METADATA_FILE, MatryoshkaMetadata
from st_matryoshka.native import RECORD_FOLDER

logger = logging.getLogger(__name__)

REPO_ID_PATTERN = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


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

    The adaptor is written as ST's own ``Normalize``/``Dense`` modules
    (:func:`~st_matryoshka.native.native_modules`), with the trainable adaptor beside them
    (``st_matryoshka_adaptor/``, ignored by plain Sentence-Transformers) so ``st_matryoshka.load_model`` can
    continue training from a download. The folder also holds ``st_matryoshka.json`` (trained dims, scores), the
    model card (``README.md``) and, when the model was evaluated, the per-dim plot. The local training record
    (``st_matryoshka_training.json``, with local paths) is not exported.

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

    Also converts a folder saved by an earlier st_matryoshka (adaptor module types in ``modules.json``) into the
    native layout.

    Example:
        ::

            from st_matryoshka.export import export_model

            export_model("runs/scifact", "runs/scifact-hub", repo_id="me/minilm-scifact-matryoshka", default_dim=96)
    """
    from st_matryoshka.model_card import PLOT_FILE, MatryoshkaModelCardData, plot_frontiers, plot_scores
    from st_matryoshka.surgery import native_model, rebuild, trainable_of

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
    try:
        native = native_model(model)
    except ValueError as exc:
        raise ParameterError("model", str(exc)) from None
    meta.repo_id, meta.exported, meta.needs_remote_code = repo_id, True, False
    card = MatryoshkaModelCardData(model_id=repo_id, matryoshka=meta)
    card.trainable = trainable_of(native)
    exported = rebuild(native, list(native), card)
    exported.truncate_dim = meta.default_dim
    with atomic_folder(output, overwrite=overwrite) as tmp:
        if plot_scores(meta, os.path.join(tmp, PLOT_FILE)):
            card.plot_file = PLOT_FILE
        card.frontier_plots = plot_frontiers(meta, tmp)
        exported.save(tmp, model_name=repo_id)
        if not os.path.isfile(os.path.join(tmp, "README.md")):  # ST logs card errors and carries on; we do not
            raise ValueError("export: the model card could not be rendered (the log above says why); nothing written")
        if card.trainable is not None and not os.path.isdir(os.path.join(tmp, RECORD_FOLDER)):
            raise ValueError(f"export: the trainable adaptor ({RECORD_FOLDER}/) was not written; nothing written")
        meta.save(tmp)
    return exported


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
