"""Command-line entry point ``st-matryoshka`` (train, evaluate, mteb)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence

from st_matryoshka._io import (
    TMP_PREFIX,
    check_creatable,
    check_free_space,
    check_output_free,
    inside,
    umask,
    write_file_atomic,
)
from st_matryoshka._validation import ParameterError, parse_dims
from st_matryoshka.cache import backbone_vectors
from st_matryoshka.callbacks import STOP_REQUESTED
from st_matryoshka.data import VALIDATION_SPLITS
from st_matryoshka.loading import load_model, resolve_model_path
from st_matryoshka.metadata import METADATA_FILE, TRAINING_FILE, MatryoshkaMetadata

logger = logging.getLogger("st_matryoshka")


def vectors_for(model, data, args: argparse.Namespace, embeddings: str | None = None):
    """:func:`backbone_vectors` with the command's --embeddings, --cache-dir, --batch-size and --device."""
    embeddings = embeddings or args.embeddings
    return backbone_vectors(model, data, embeddings, args.cache_dir, args.batch_size, parse_device(args))


def parse_device(args: argparse.Namespace) -> str | list[str] | None:
    """``--device``: ``cuda``, ``cpu``, or a comma-separated list (``cuda:0,cuda:1``) for multi-process encoding."""
    value = getattr(args, "device", None)
    if not value:
        return None
    devices = [d.strip() for d in value.split(",") if d.strip()]
    known = ("cpu", "cuda", "mps", "xpu", "npu", "hpu")
    for device in devices:
        if device.split(":")[0] not in known or (":" in device and not device.split(":")[1].isdigit()):
            raise ValueError(f"--device: {device!r} is not a torch device (cpu, cuda, cuda:1, ...), got {value!r}")
    return devices if len(devices) > 1 else devices[0]


def model_and_dims(args: argparse.Namespace):
    """Parse ``--dims``, load ``--model`` and check the dims against its width: ``(model, dims)``."""
    from st_matryoshka.training import backbone_dim

    dims = parse_dims(args.dims)
    model = load_model(args.model, trust_remote_code=getattr(args, "trust_remote_code", False))
    width = backbone_dim(model)
    if dims[0] > width:
        raise ValueError(f"--dims must not exceed the model's embedding width {width}, got {args.dims!r}")
    return model, dims


def data_scorer(model, data, args: argparse.Namespace):
    """The model's head on cached backbone vectors of ``data``'s corpus and queries (the transformer runs once)."""
    from st_matryoshka.training import data_fast_model, head_of

    corpus_vectors, query_vectors = vectors_for(model, data, args)
    return data_fast_model(data, corpus_vectors, query_vectors, head_of(model))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Model folder or Hub id (all-MiniLM-L6-v2 works offline).")
    parser.add_argument(
        "--data", required=True, help="BEIR folder (or name under $ST_MATRYOSHKA_DATA) or Hub dataset id."
    )
    parser.add_argument("--embeddings", help="Folder with corpus.npy and queries.npy (rows in file order).")
    parser.add_argument("--dims", required=True, help="Comma-separated dims, strictly descending, e.g. 192,96,48,24.")
    parser.add_argument("--cache-dir", help="Backbone embedding cache (default $ST_MATRYOSHKA_CACHE or ~/.cache).")
    parser.add_argument("--batch-size", type=int, default=32, help="Backbone encoding batch size.")
    _device(parser)
    _trust(parser)


def _device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        help="Device for encoding uncached texts: cuda, cpu, or a list (cuda:0,cuda:1) for ST's multi-process "
        "encoding of a large corpus.",
    )


def _training_options(parser: argparse.ArgumentParser) -> None:
    """Method and hyper-parameter flags shared by ``train`` and ``fit-vectors``."""
    parser.add_argument(
        "--method",
        default="matryoshka-adaptor",
        choices=["matryoshka-adaptor", "pca", "search-adaptor", "smec"],
        help="pca: the centred-PCA baseline as a linear module (nothing trained); search-adaptor: one linear map "
        "trained with the rank loss over every prefix (supervised only); smec: SMEC (SMRL + ADS + S-XBM).",
    )
    parser.add_argument("--output", required=True, help="Folder for the trained model.")
    parser.add_argument("--overwrite", action="store_true", help="Replace a model already in --output.")
    parser.add_argument("--no-pca-init", action="store_true", help="Start from the identity, not the PCA rotation.")
    parser.add_argument(
        "--precision",
        default=None,
        help="Comma-separated index precisions to train for (quantisation-aware): float32 (default), int8, binary.",
    )
    parser.add_argument("--center", action="store_true", help="Centre inputs on the corpus mean (classic PCA start).")
    parser.add_argument(
        "--balance-bits",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Rotate the start's coordinates between consecutive --dims for even sign bits (ITQ); prefix similarities "
        "are unchanged. Default: on with --precision binary (not for --method smec; with pca: PCA-ITQ).",
    )
    parser.add_argument("--unsupervised-epochs", type=int, default=None)
    parser.add_argument("--supervised-epochs", type=int, default=None)
    parser.add_argument("--hidden-dim", type=int, default=None)
    parser.add_argument("--num-layers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--distill-weight", type=float, default=None, help="L_distill weight (0: the paper's loss).")
    parser.add_argument("--unsupervised-batch-size", type=int, default=None)
    parser.add_argument("--supervised-batch-size", type=int, default=None)
    parser.add_argument("--num-negatives", type=int, default=None, help="Hard negatives per query row (default 16).")
    parser.add_argument(
        "--validation-split",
        choices=list(VALIDATION_SPLITS),
        default=None,
        help="How --supervised holds out its validation queries: document-disjoint (default; no training query "
        "cites their documents), query-hash (by a hash of the id) or both (selection on both kinds, the guard on "
        "the first). Too connected qrels fall back to query-hash.",
    )
    parser.add_argument(
        "--max-samples",
        type=int,
        default=None,
        help="Training samples per phase at most (default: no cap): a large corpus trains on a seeded sample.",
    )
    _smec_options(parser)


def _trust(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="Allow code shipped inside the model folder or repository to run (auto_map configs, custom module "
        "files). Off by default: st_matryoshka's own modules always come from the installed package.",
    )


def _smec_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("SMEC (--method smec)")
    group.add_argument(
        "--no-smrl", action="store_true", help="Train all dims jointly (MRL-style), not stage by stage."
    )
    group.add_argument(
        "--no-ads", action="store_true", help="Keep the first dims at each stage (no learned selection)."
    )
    group.add_argument("--no-xbm", action="store_true", help="In-batch neighbours instead of the cross-batch memory.")
    group.add_argument("--memory-size", type=int, default=None, help="Cross-batch memory entries (default 5000).")
    group.add_argument("--temperature", default=None, help="Gumbel temperature schedule START,END (default 0.5,0.05).")
    group.add_argument("--allow-any-dims", action="store_true", help="Accept dims that are not successive halvings.")
    group.add_argument(
        "--stage-lr-multiplier", type=float, default=None, help="Stage learning rate / body learning rate (default 5)."
    )
    group.add_argument(
        "--no-stage-pca-init",
        action="store_true",
        help="Start each stage from where it was left (the previous embedding's truncation), not from PCA of it.",
    )
    group.add_argument(
        "--unsupervised-body-early-stop",
        action="store_true",
        help="Select the body's unsupervised weights by early stopping (default: train it for the full "
        "unsupervised epochs and keep the last weights).",
    )
    group.add_argument(
        "--body-patience",
        type=int,
        default=None,
        help="Evaluations without improvement before the SMRL stage that trains the body stops (default: --patience "
        "of the other stages, 5).",
    )
    group.add_argument(
        "--body-all-dims",
        action="store_true",
        help="The first SMRL stage trains the body with the loss over every dim (as the Matryoshka-Adaptor does), "
        "not over D and D/2 only.",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="st-matryoshka", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="Train an adaptor and save the model with it.")
    _common(train)
    train.add_argument("--supervised", action="store_true", help="Add the supervised stage on --train-split.")
    train.add_argument("--train-split", default="train", help="qrels split for the supervised stage.")
    _training_options(train)
    train.add_argument(
        "--default-dim",
        type=int,
        default=None,
        help="One of --dims (or the full width), saved as ST's truncate_dim: SentenceTransformer(OUT).encode returns "
        "that many dims unless told otherwise.",
    )

    fit = sub.add_parser("fit-vectors", help="Fit an adaptor on embedding matrices (.npy), no model needed.")
    fit.add_argument(
        "--corpus", required=True, help="(n, D) corpus vectors: .npy (memory-mapped), or .parquet/.arrow (--column)."
    )
    fit.add_argument("--column", help="Vector column of a .parquet/.arrow input (default: embedding).")
    fit.add_argument("--queries", help="(m, D) query vectors, .npy: with --qrels, adds the supervised stage.")
    fit.add_argument("--qrels", help="BEIR qrels .tsv (query-id, corpus-id, score) naming rows by their ids.")
    fit.add_argument("--corpus-ids", help="One id per corpus row (default: row numbers).")
    fit.add_argument("--query-ids", help="One id per query row (default: row numbers).")
    fit.add_argument("--dims", required=True, help="Comma-separated dims, strictly descending, e.g. 192,96,48,24.")
    _training_options(fit)

    apply = sub.add_parser("apply-vectors", help="Map vectors through a fit-vectors adaptor to one dim, in chunks.")
    apply.add_argument("--model", required=True, help="Folder written by fit-vectors.")
    apply.add_argument("--input", required=True, help="(n, D) vectors, .npy (memory-mapped).")
    apply.add_argument("--dim", required=True, type=int, help="Output dims (a trained dim is best).")
    apply.add_argument("--output", required=True, help="Output .npy, written chunk by chunk.")
    apply.add_argument("--precision", default="float32", help="float32, int8 or binary (ST's quantize_embeddings).")
    apply.add_argument("--overwrite", action="store_true", help="Replace an existing --output.")

    extend = sub.add_parser("extend", help="Add a dim to a trained SMEC model, training only the new stage.")
    extend.add_argument("--model", required=True, help="Folder of a model trained with --method smec.")
    extend.add_argument("--dims", required=True, help="The new dim(s), e.g. 12; several are added in turn.")
    extend.add_argument("--output", required=True, help="Folder for the extended model.")
    extend.add_argument("--overwrite", action="store_true", help="Replace a model already in --output.")
    extend.add_argument("--data", help="BEIR folder (default: the one the model was trained on).")
    extend.add_argument("--embeddings", help="corpus.npy / queries.npy folder (default: the one used in training).")
    extend.add_argument("--allow-any-dims", action="store_true", help="Accept a dim that is not half the smallest.")
    extend.add_argument("--cache-dir", help="Backbone embedding cache.")
    extend.add_argument("--batch-size", type=int, default=32, help="Backbone encoding batch size.")
    _device(extend)
    _trust(extend)

    evaluate = sub.add_parser("evaluate", help="NDCG@10 and Recall@100 at every dim.")
    _common(evaluate)
    evaluate.add_argument("--split", default="test", help="qrels split to score.")
    evaluate.add_argument("--json", help="Write the scores here as JSON (a new file, unless --overwrite).")
    evaluate.add_argument("--overwrite", action="store_true", help="Replace an existing --json file.")
    evaluate.add_argument(
        "--precision",
        default="float32",
        help="Comma-separated float32,int8,binary: score each dim with quantised codes (ST's quantize_embeddings). "
        "One precision: the JSON keeps the float32 shape; several: one such object per precision.",
    )
    evaluate.add_argument(
        "--rescore",
        type=int,
        help="Retrieve this many documents by the codes, then re-rank them by the float query prefix against the "
        "document codes (nothing more is stored per document).",
    )
    evaluate.add_argument(
        "--record",
        action="store_true",
        help="Also score the base model's truncation and PCA on the same queries and record all three in the model's "
        "st_matryoshka.json and card (the model must be an st_matryoshka model folder).",
    )
    mteb = sub.add_parser("mteb", help="MTEB scores per dim, in MTEB's result layout (needs the mteb extra).")
    mteb.add_argument("--model", required=True, help="Model folder or Hub id.")
    source = mteb.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="BEIR folder scored as a local MTEB retrieval task.")
    source.add_argument("--tasks", help="Comma-separated MTEB task names (downloaded from the Hub).")
    mteb.add_argument("--embeddings", help="With --data: corpus.npy / queries.npy instead of the cache.")
    mteb.add_argument("--split", default="test", help="With --data: qrels split to score.")
    mteb.add_argument("--dims", required=True, help="Comma-separated dims, strictly descending.")
    mteb.add_argument("--output", required=True, help="MTEB results folder (one model per folder).")
    mteb.add_argument("--model-name", help="org/name recorded in the results (default st-matryoshka/<folder name>).")
    mteb.add_argument("--cache-dir", help="Backbone embedding cache.")
    mteb.add_argument("--batch-size", type=int, default=32, help="Backbone encoding batch size.")
    mteb.add_argument("--revision", help="Model revision recorded in the results (default: a hash of the weights).")
    mteb.add_argument(
        "--precision",
        default="float32",
        help="Comma-separated float32,int8,binary: also score each dim's codes, each as its own MTEB experiment "
        "(int8 needs the model's stored calibration).",
    )
    _device(mteb)
    _trust(mteb)

    front = sub.add_parser("frontier", help="NDCG@10 against bytes per vector: dims x precisions, Pareto fronts.")
    _common(front)
    front.add_argument("--split", default="test", help="qrels split to score.")
    front.add_argument("--precision", default="float32,int8,binary", help="Comma-separated precisions to score.")
    front.add_argument("--rescore", type=int, help="Re-rank the top K by the float query prefix (see evaluate).")
    front.add_argument("--output", required=True, help="Folder for frontier.json, frontier.md and frontier.png.")
    front.add_argument(
        "--record",
        action="store_true",
        help="Also store the points in the model folder's st_matryoshka.json; its card then shows and plots them.",
    )

    export = sub.add_parser("export", help="Write the Hub-ready folder of a trained model (what push uploads).")
    export.add_argument("--model", required=True, help="Folder of a model trained by st_matryoshka.")
    export.add_argument("--output", required=True, help="Folder to write.")
    _publish_options(export)
    export.add_argument("--overwrite", action="store_true", help="Replace a folder that holds files.")

    push = sub.add_parser("push", help="Export a trained model and upload it to the Hugging Face Hub.")
    push.add_argument("--model", required=True, help="Folder of a model trained by st_matryoshka.")
    _publish_options(push, repo_required=True)
    push.add_argument("--private", action="store_true", help="Create the repository as private.")
    push.add_argument("--revision", help="Branch to upload to (created if missing).")
    return parser


def _publish_options(parser: argparse.ArgumentParser, repo_required: bool = False) -> None:
    parser.add_argument("--repo-id", required=repo_required, help="org/name on the Hub (named in the card).")
    parser.add_argument("--default-dim", type=int, help="One of the trained dims, saved as ST's truncate_dim.")
    parser.add_argument("--license", help="Licence identifier for the card (e.g. apache-2.0).")
    _trust(parser)


def stored_int8_ranges(model_name: str, precisions: Sequence[str]) -> dict | None:
    """The int8 ranges stored with an st_matryoshka model; a notice when it is one of ours saved without them."""
    from st_matryoshka.metadata import matryoshka_dims

    try:
        meta = matryoshka_dims(resolve_model_path(model_name))
    except ValueError:
        return None  # not an st_matryoshka model: ranges come from the scored corpus, as for any base model
    if "int8" in precisions and not meta.int8_ranges:
        logger.warning(
            f"--model: {model_name} has no stored int8 calibration (saved by st_matryoshka "
            f"{meta.st_matryoshka_version or 'before 0.4'}); int8 ranges are computed from --data's corpus"
        )
    return meta.int8_ranges or None


def trained_dims_of(model_name: str) -> list[int] | None:
    """The trained dims recorded in a model's ``st_matryoshka.json`` (folder or Hub cache), if it has one."""
    from st_matryoshka.metadata import matryoshka_dims

    try:
        return matryoshka_dims(resolve_model_path(model_name)).dims
    except ValueError:
        return None


def cmd_mteb(args: argparse.Namespace) -> int:
    from st_matryoshka.cache import model_fingerprint
    from st_matryoshka.data import load_beir
    from st_matryoshka.evaluation.mteb_runner import beir_task, mteb_model_meta, named_tasks, run_mteb_per_dim

    precisions = parse_precisions(args)
    task_names = [t.strip() for t in (args.tasks or "").split(",") if t.strip()]
    if not args.data and not task_names:  # an empty list would select every MTEB task
        raise ValueError(f"--tasks must name at least one MTEB task (e.g. SciFact), got {args.tasks!r}")
    model, dims = model_and_dims(args)
    default_name = args.model if args.model.count("/") == 1 and not os.path.exists(args.model) else None
    name = args.model_name or default_name or f"st-matryoshka/{os.path.basename(os.path.normpath(args.model))}"
    if args.data:
        data = load_beir(args.data, split=args.split)
        scorer = data_scorer(model, data, args)
        tasks = [beir_task(data, split=args.split)]
    else:
        scorer = model
        tasks = named_tasks(task_names)
    trained_dims = trained_dims_of(args.model)
    model_meta = mteb_model_meta(args.model, name=name, revision=args.revision, loaded=model) if trained_dims else None
    revision = model_meta.revision if model_meta else args.revision or model_fingerprint(model)
    scores = run_mteb_per_dim(
        scorer,
        tasks,
        dims,
        args.output,
        model_name=name,
        revision=revision,
        trained_dims=trained_dims,
        model_meta=model_meta,
        precisions=precisions,
        int8_ranges=stored_int8_ranges(args.model, precisions),
    )
    for task, by_dim in scores.items():
        print(task + "  " + "  ".join(f"{dim}: {value:.4f}" for dim, value in by_dim.items()))
    return 0


def training_overrides(args: argparse.Namespace) -> dict:
    """Training-config keyword arguments from the flags ``train`` and ``fit-vectors`` share (set ones only)."""
    overrides = {
        "unsupervised_epochs": args.unsupervised_epochs,
        "supervised_epochs": args.supervised_epochs,
        "hidden_dim": args.hidden_dim,
        "num_layers": args.num_layers,
        "seed": args.seed,
        "distill_weight": args.distill_weight,
        "unsupervised_batch_size": args.unsupervised_batch_size,
        "supervised_batch_size": args.supervised_batch_size,
        "num_negatives": args.num_negatives,
        "max_samples": args.max_samples,
        "validation_split": args.validation_split,
        "pca_init": False if args.no_pca_init else None,
        "center_input": True if args.center else None,
        "balance_bits": args.balance_bits,
        "precisions": [p.strip() for p in args.precision.split(",") if p.strip()] if args.precision else None,
    }
    if args.method == "smec":
        overrides.update(smec_overrides(args))
    elif any(
        (
            args.no_smrl,
            args.no_ads,
            args.no_xbm,
            args.memory_size,
            args.temperature,
            args.allow_any_dims,
            args.stage_lr_multiplier is not None,
            args.no_stage_pca_init,
            args.unsupervised_body_early_stop,
            args.body_all_dims,
            args.body_patience is not None,
        )
    ):
        raise ValueError(
            "--no-smrl/--no-ads/--no-xbm/--memory-size/--temperature/--allow-any-dims/--stage-lr-multiplier/"
            "--no-stage-pca-init/--unsupervised-body-early-stop/--body-all-dims/--body-patience need --method smec, "
            f"got --method {args.method}"
        )
    return {k: v for k, v in overrides.items() if v is not None}


def print_stages(stages) -> None:
    for stage in stages:
        if stage.best is None:  # a phase total (SMEC): time only
            print(f"{stage.name}: {stage.seconds:.1f}s")
            continue
        print(
            f"{stage.name}: best {stage.metric} = {stage.best:.4f} at step {stage.best_step} "
            f"({len(stage.history)} evaluations, {stage.seconds:.1f}s)"
        )


def cmd_train(args: argparse.Namespace) -> int:
    from st_matryoshka.config import config_for
    from st_matryoshka.data import load_beir
    from st_matryoshka.engine import fit_adaptor
    from st_matryoshka.training import backbone_dim, calibrate, save_model_atomic, stage_summary, training_metadata
    from st_matryoshka.vectors import append_to

    parse_dims(args.dims)  # a malformed --dims fails before anything is loaded
    check_output_free(args.output, args.overwrite, inputs=[args.data, args.embeddings, args.model])
    if args.method == "pca" and args.supervised:
        raise ValueError("--supervised does not apply to --method pca")
    if args.method == "search-adaptor" and not args.supervised:
        raise ValueError("--method search-adaptor is supervised: pass --supervised (and --train-split)")
    overrides = training_overrides(args)
    model, dims = model_and_dims(args)
    width = backbone_dim(model)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    check_free_space(args.output, weights + 4 * width * width * 4 + 10_000_000)  # backbone + adaptor + tokenizer
    if args.default_dim is not None and args.default_dim not in {width, *dims}:
        raise ValueError(f"--default-dim must be one of --dims or the width {width}, got {args.default_dim}")
    data = load_beir(args.data, split=args.train_split if args.supervised else None)
    corpus_vectors, query_vectors = vectors_for(model, data, args)
    config = config_for(args.method, dims, width, **overrides)
    start = time.perf_counter()
    adaptor, stages = fit_adaptor(args.method, width, data, corpus_vectors, query_vectors, config, args.supervised)
    trained = append_to(model, adaptor)
    summary = {
        "method": args.method,
        "supervised": args.supervised,
        "train_split": args.train_split,
        "base_model": args.model,
        "data": os.path.abspath(args.data) if os.path.isdir(args.data) else args.data,
        "embeddings": os.path.abspath(args.embeddings) if args.embeddings else None,
        "config": config.__dict__,
        "default_dim": args.default_dim,
        "stages": stage_summary(stages),
        "train_seconds": time.perf_counter() - start,
    }
    metadata = training_metadata(trained, summary, stages)
    calibrate(metadata, adaptor, corpus_vectors, args.data)  # int8 ranges stored with the model
    save_model_atomic(trained, args.output, overwrite=args.overwrite, extra=summary, metadata=metadata)
    print_stages(stages)
    print(f"saved to {args.output}")
    return 0


def cmd_fit_vectors(args: argparse.Namespace) -> int:
    from st_matryoshka.vectors import fit_vectors, read_ids, read_vectors, save_adaptor

    dims = parse_dims(args.dims)
    inputs = [args.corpus, args.queries, args.qrels, args.corpus_ids, args.query_ids]
    check_output_free(args.output, args.overwrite, inputs=inputs)
    overrides = training_overrides(args)
    corpus = read_vectors(args.corpus, "--corpus", column=args.column)
    if dims[0] >= corpus.shape[1] and args.method != "smec":
        raise ValueError(f"--dims must be below the vectors' width {corpus.shape[1]}, got {args.dims!r}")
    corpus_ids = read_ids(args.corpus_ids, len(corpus), "--corpus-ids", "--corpus")
    queries = query_ids = None
    if args.qrels or args.queries:
        if not (args.qrels and args.queries):
            raise ValueError("--queries and --qrels go together (the supervised stage needs both)")
        queries = read_vectors(args.queries, "--queries", width=corpus.shape[1], column=args.column)
        query_ids = read_ids(args.query_ids, len(queries), "--query-ids", "--queries")
    elif args.method == "search-adaptor":
        raise ValueError("--method search-adaptor is supervised: pass --queries and --qrels")
    adaptor, meta, stages = fit_vectors(
        corpus,
        dims,
        method=args.method,
        queries=queries,
        qrels=args.qrels,
        corpus_ids=corpus_ids,
        query_ids=query_ids,
        data_name=args.corpus,
        **overrides,
    )
    save_adaptor(adaptor, args.output, meta, overwrite=args.overwrite)
    print_stages(stages)
    print(f"trained dims {meta.dims}; saved to {args.output}")
    return 0


def cmd_apply_vectors(args: argparse.Namespace) -> int:
    from st_matryoshka.metadata import MatryoshkaMetadata
    from st_matryoshka.vectors import apply_vectors, load_adaptor, read_vectors

    check_writable_file(args.output, "--output")
    if os.path.exists(args.output) and not args.overwrite:
        raise ValueError(f"--output: {args.output!r} exists; pass --overwrite to replace it")
    adaptor = load_adaptor(args.model)
    vectors = read_vectors(args.input, "--input", width=adaptor.get_embedding_dimension())
    ranges = MatryoshkaMetadata.load(args.model).int8_ranges or None  # apply_vectors says when there are none
    # A fresh temporary name beside the output (never a user's "<output>.tmp.npy"), moved into place when complete
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".npy", dir=os.path.dirname(os.path.abspath(args.output)))
    os.close(fd)
    os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; the output follows the umask like any new file
    try:
        apply_vectors(adaptor, vectors, args.dim, precision=args.precision, output=tmp, int8_ranges=ranges)
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {len(vectors)} x {args.dim}-d {args.precision} vectors to {args.output}")
    return 0


def smec_overrides(args: argparse.Namespace) -> dict:
    """SMECTrainingConfig keyword arguments from the SMEC command-line switches."""
    overrides = {
        "smrl": not args.no_smrl,
        "ads": not args.no_ads,
        "xbm": not args.no_xbm,
        "memory_size": args.memory_size,
        "allow_any_dims": args.allow_any_dims,
        "stage_lr_multiplier": args.stage_lr_multiplier,
        "stage_pca_init": not args.no_stage_pca_init,
        "unsupervised_body_early_stop": args.unsupervised_body_early_stop,
        "body_all_dims": args.body_all_dims,
        "body_patience": args.body_patience,
    }
    if args.temperature is not None:
        try:
            start, end = (float(v) for v in args.temperature.split(","))
        except ValueError:
            raise ValueError(f"--temperature must be START,END (two numbers), got {args.temperature!r}") from None
        if start <= 0 or end <= 0:
            raise ValueError(f"--temperature: the schedule must stay above 0, got {args.temperature!r}")
        overrides.update(temperature_start=start, temperature_end=end)
    return overrides


def cmd_extend(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from st_matryoshka.data import load_beir
    from st_matryoshka.training import calibrate, save_model_atomic, stage_summary, training_metadata
    from st_matryoshka.training_smec import SMECTrainingConfig, extend_smec, smec_adaptor_of

    new_dims = parse_dims(args.dims)
    check_output_free(args.output, args.overwrite, inputs=[args.model, args.data, args.embeddings])
    info_path = os.path.join(resolve_model_path(args.model), TRAINING_FILE)
    if not os.path.isfile(info_path):
        raise ValueError(f"--model: {args.model!r} has no {TRAINING_FILE}; train it with --method smec")
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    if info.get("method") != "smec":
        raise ValueError(f"--model: {args.model!r} was trained with --method {info.get('method')}, not smec")
    model = load_model(args.model, trust_remote_code=args.trust_remote_code)
    adaptor = smec_adaptor_of(model)
    data_path = args.data or info["data"]
    supervised = bool(info.get("supervised"))
    data = load_beir(data_path, split=info.get("train_split", "train") if supervised else None)
    embeddings = args.embeddings or info.get("embeddings")
    corpus_vectors, query_vectors = vectors_for(model, data, args, embeddings)
    known = {f.name for f in fields(SMECTrainingConfig)}
    saved = {k: v for k, v in info.get("config", {}).items() if k in known}
    start = time.perf_counter()
    stages = []
    for dim in new_dims:
        config = SMECTrainingConfig(**{**saved, "dims": [dim], "allow_any_dims": args.allow_any_dims})
        model, added = extend_smec(model, data, corpus_vectors, query_vectors, dim, config, supervised=supervised)
        stages += added
    adaptor = smec_adaptor_of(model)  # the extended copy
    info["config"] = {**info.get("config", {}), "dims": [d for d in adaptor.trained_dims if d < adaptor.embedding_dim]}
    info["extensions"] = [
        *info.get("extensions", []),
        {"dims": new_dims, "stages": stage_summary(stages), "train_seconds": time.perf_counter() - start},
    ]
    metadata = training_metadata(model, info, stages)
    folder = resolve_model_path(args.model)
    if os.path.isfile(os.path.join(folder, METADATA_FILE)):
        previous = MatryoshkaMetadata.load(folder)
        # An extension leaves every trained dim's similarities unchanged: earlier scores still hold.
        metadata.scores, metadata.eval_split, metadata.notes = previous.scores, previous.eval_split, previous.notes
        metadata.default_dim, metadata.license = previous.default_dim, previous.license
        metadata.losses = {**previous.losses, **metadata.losses}
    calibrate(metadata, adaptor, corpus_vectors, data_path)  # the new dim's int8 ranges too
    save_model_atomic(model, args.output, overwrite=args.overwrite, extra=info, metadata=metadata)
    for stage in stages:
        if stage.best is not None:
            print(f"{stage.name}: best {stage.metric} = {stage.best:.4f} at step {stage.best_step}")
    print(f"trained dims {adaptor.trained_dims}; saved to {args.output}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from st_matryoshka.data import load_beir
    from st_matryoshka.evaluation import evaluate_per_dim
    from st_matryoshka.evaluation.quantized import evaluate_quantized
    from st_matryoshka.model_card import bytes_per_vector
    from st_matryoshka.training import data_fast_model, head_of

    precisions = parse_precisions(args)
    if args.record and "float32" not in precisions:
        raise ValueError(f"--record records float32 scores: add float32 to --precision, got {args.precision!r}")
    if args.json:
        check_writable_file(args.json, "--json")
        if os.path.exists(args.json) and not args.overwrite:
            raise ValueError(f"--json: {args.json!r} exists; pass --overwrite to replace it")
        model_folder = resolve_model_path(args.model) if os.path.isdir(args.model) else None
        if model_folder and inside(args.json, model_folder):
            raise ValueError(f"--json: {args.json!r} is inside the model folder {args.model!r}; write it elsewhere")
    record_folder = record_folder_of(args)
    model, dims = model_and_dims(args)
    data = load_beir(args.data, split=args.split)
    vectors = vectors_for(model, data, args)
    fast = data_fast_model(data, *vectors, head_of(model))
    ranges = stored_int8_ranges(args.model, precisions)
    by_precision = {}
    for precision in precisions:
        if precision == "float32":
            by_precision[precision] = evaluate_per_dim(fast, data, dims)
        else:
            by_precision[precision] = evaluate_quantized(
                fast, data, dims, precision, rescore=args.rescore, int8_ranges=ranges
            )
    sizes = {dim: bytes_per_vector(dim) for dim in dims}
    for precision, result in by_precision.items():
        result["bytes_per_vector"] = {str(dim): sizes[dim][precision] for dim in dims}
        if len(precisions) > 1 or precision != "float32":
            print(f"== {precision}" + (f", rescored from the top {args.rescore}" if args.rescore else ""))
        print(f"{'dim':>6}  {'bytes':>6}  {'NDCG@10':>8}  {'Recall@100':>10}")
        for dim in dims:
            size = sizes[dim][precision]
            ndcg, recall = result["ndcg_at_10"][str(dim)], result["recall_at_100"][str(dim)]
            print(f"{dim:>6}  {size:>6}  {ndcg:>8.4f}  {recall:>10.4f}")
    scores = by_precision.get("float32")
    if args.json:
        if len(precisions) == 1:  # the float32 shape, keyed by dim
            (only,) = by_precision.values()
            value = {k: only[k] for k in ("ndcg_at_10", "recall_at_100")}
        else:
            value = by_precision
        write_json_atomic(args.json, value, "--json", overwrite=args.overwrite)
    if record_folder is not None:
        record_scores(record_folder, model, data, vectors, scores, dims, args)
        print(f"recorded in {os.path.join(record_folder, METADATA_FILE)} and its card")
    return 0


def record_folder_of(args: argparse.Namespace) -> str | None:
    """With ``--record``, the model's local folder (checked before any work: it must hold st_matryoshka.json)."""
    if not args.record:
        return None
    folder = resolve_model_path(args.model)
    if not os.path.isfile(os.path.join(folder, METADATA_FILE)):
        raise ValueError(f"--record: {args.model!r} is not an st_matryoshka model folder (no {METADATA_FILE})")
    try:
        MatryoshkaMetadata.load(folder)  # unreadable metadata fails now, not after the scoring
    except ValueError as exc:
        raise ValueError(f"--record: {exc}") from None
    return folder


def parse_precisions(args: argparse.Namespace) -> list[str]:
    """``--precision`` as a list, checked against ``--dims`` and ``--rescore``."""
    from st_matryoshka.evaluation.quantized import check_precisions

    names = [p.strip() for p in args.precision.split(",") if p.strip()]
    return check_precisions(names, parse_dims(args.dims), getattr(args, "rescore", None))


def check_writable_file(path: str, argument: str) -> None:
    """Refuse, before any work, a file path that is a folder or whose folder cannot be created or written."""
    if os.path.isdir(path):
        raise ValueError(f"{argument}: {path!r} is a folder")
    check_creatable(path, argument)


def write_json_atomic(path: str, value: object, argument: str, overwrite: bool = False) -> None:
    """Write ``value`` as JSON to a new ``path``, or replace it with ``overwrite`` (``_io.write_file_atomic``)."""
    write_file_atomic(path, json.dumps(value, indent=2).encode("utf-8"), overwrite=overwrite, argument=argument)


def record_scores(folder: str, model, data, vectors, scores: dict, dims: list[int], args: argparse.Namespace) -> None:
    """Score the base model's truncation and PCA on the same queries; record all three in the folder's metadata."""
    from st_matryoshka.data import load_beir
    from st_matryoshka.evaluation import evaluate_per_dim
    from st_matryoshka.model_card import dataset_key, write_card_files
    from st_matryoshka.training import data_fast_model, fit_pca_adaptor, head_of

    meta = MatryoshkaMetadata.load(folder)
    truncation = evaluate_per_dim(data_fast_model(data, *vectors, []), data, dims)
    pca = head_of(fit_pca_adaptor(model, vectors[0]))
    pca_scores = evaluate_per_dim(data_fast_model(data, *vectors, pca), data, dims)
    key = dataset_key(args.data)
    note = None
    train = meta.train_data
    if meta.supervised and train.get("name") == key and train.get("split") not in (None, args.split):
        try:
            train_qrels = load_beir(args.data, split=train["split"]).qrels
        except ValueError:
            train_qrels = {}
        cited = {doc for docs in train_qrels.values() for doc in docs}
        overlap = sum(1 for docs in data.qrels.values() if set(docs) & cited)
        note = (
            f"This model was trained on the `{train['split']}` qrels of this data set: {overlap} of the "
            f"{len(data.qrels)} `{args.split}` queries have a relevant document that the training qrels also cite, "
            "so these scores are not zero-shot."
        )
    meta.record_scores(key, args.split, {"model": scores, "truncation": truncation, "pca": pca_scores}, note=note)
    meta.save(folder)
    write_card_files(folder, meta)


def cmd_frontier(args: argparse.Namespace) -> int:
    from st_matryoshka.data import load_beir
    from st_matryoshka.evaluation.frontier import frontier, pareto_fronts, write_frontier
    from st_matryoshka.training import head_of, pca_adaptor

    precisions = parse_precisions(args)
    check_creatable(os.path.join(args.output, "frontier.json"), "--output")
    record_folder = record_folder_of(args)
    model, dims = model_and_dims(args)
    data = load_beir(args.data, split=args.split)
    corpus_vectors, query_vectors = vectors_for(model, data, args)
    width = corpus_vectors.shape[1]
    heads = {"truncation": [], "PCA": [pca_adaptor(width, corpus_vectors)]}
    if head_of(model) and any(type(m).__module__.startswith("st_matryoshka.") for m in head_of(model)):
        heads["model"] = head_of(model)
    ranges = {"model": stored_int8_ranges(args.model, precisions)} if "model" in heads else None
    rows = frontier(heads, data, corpus_vectors, query_vectors, dims, precisions, args.rescore, ranges)
    write_frontier(rows, args.output, title=f"{os.path.basename(os.path.normpath(args.data))} ({args.split})")
    for method, front in pareto_fronts(rows).items():
        points = ", ".join(f"{r['bytes']} B {r['dim']}-d {r['precision']} {r['ndcg_at_10']:.4f}" for r in front)
        print(f"{method}: {points}")
    print(f"wrote {args.output}/frontier.md, frontier.json, frontier.png")
    if record_folder is not None:
        from st_matryoshka.model_card import dataset_key, write_card_files

        meta = MatryoshkaMetadata.load(record_folder)
        meta.frontier[dataset_key(args.data)] = {"split": args.split, "rescore": args.rescore, "rows": rows}
        meta.save(record_folder)
        write_card_files(record_folder, meta)
        print(f"recorded in {os.path.join(record_folder, METADATA_FILE)} and its card")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from st_matryoshka.export import check_repo_id, export_model

    check_repo_id(args.repo_id)
    check_output_free(args.output, args.overwrite, inputs=[args.model])
    exported = export_model(
        args.model,
        args.output,
        repo_id=args.repo_id,
        default_dim=args.default_dim,
        license=args.license,
        overwrite=args.overwrite,
        trust_remote_code=args.trust_remote_code,
    )
    print(f"exported {[type(m).__name__ for m in exported]} to {args.output}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from st_matryoshka.export import push_to_hub

    url = push_to_hub(
        args.model,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        default_dim=args.default_dim,
        license=args.license,
    )
    print(f"pushed to {args.repo_id}: {url}")
    return 0


# Library parameters whose command-line flag is not the parameter's name with dashes, per command.
_TRAINING_FLAGS = {"config": "--method", "precisions": "--precision"}
FLAG_OF = {
    "train": {"corpus_vectors": "--embeddings", "qrels": "--train-split", **_TRAINING_FLAGS},
    "fit-vectors": {"corpus_vectors": "--corpus", "supervised": "--qrels", **_TRAINING_FLAGS},
    "extend": {"dim": "--dims", "corpus_vectors": "--embeddings", "qrels": "--data"},
}


def flag_message(parser: argparse.ArgumentParser, command: str, exc: ParameterError) -> str:
    """``exc``'s message with the library's parameter names replaced by ``command``'s flags for them.

    The parameter the error is about becomes its flag (``dim`` → ``--dims`` for ``extend``); other snake_case
    parameter names it mentions become their flags where ``command`` has one (``allow_any_dims`` →
    ``--allow-any-dims``).
    """
    import re

    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    options = {o for a in subparsers[0].choices[command]._actions for o in a.option_strings} if subparsers else set()
    flag = FLAG_OF.get(command, {}).get(exc.parameter, "--" + exc.parameter.replace("_", "-"))
    message = exc.with_name(flag) if flag in options else str(exc)

    def to_flag(match: re.Match) -> str:
        candidate = "--" + match.group(0).replace("_", "-")
        return candidate if candidate in options else match.group(0)

    return re.sub(r"(?<![\w-])[a-z]+(?:_[a-z0-9]+)+\b", to_flag, message)


def quiet_libraries() -> None:
    """Keep the console to our own progress bars and summaries: no per-file bars or metric dicts from libraries."""
    import transformers
    from huggingface_hub.utils import disable_progress_bars

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    disable_progress_bars()


def raise_terminated(signum: int, frame: object) -> None:
    """SIGTERM: stop as Ctrl-C does; training also stops at its next step if this exception is lost."""
    STOP_REQUESTED.set()
    raise KeyboardInterrupt  # main() tells it from Ctrl-C by STOP_REQUESTED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logger.setLevel(logging.INFO)
    # Per-evaluation metrics (MetricsToLogProgressCallback) and the callbacks' per-stage lines show with -v only: the
    # command prints every stage's summary when it ends.
    for name in ("st_matryoshka.training", "st_matryoshka.callbacks"):
        logging.getLogger(name).setLevel(logging.INFO if args.verbose else logging.WARNING)
    if not args.verbose:
        quiet_libraries()
    if getattr(args, "batch_size", 1) < 1:
        parser.exit(2, f"st-matryoshka: error: --batch-size must be a positive int, got {args.batch_size}\n")
    previous = signal.signal(signal.SIGTERM, raise_terminated)  # SIGTERM unwinds like Ctrl-C: temp folders go
    try:
        commands = {
            "train": cmd_train,
            "evaluate": cmd_evaluate,
            "mteb": cmd_mteb,
            "extend": cmd_extend,
            "export": cmd_export,
            "push": cmd_push,
            "fit-vectors": cmd_fit_vectors,
            "frontier": cmd_frontier,
            "apply-vectors": cmd_apply_vectors,
        }
        code = commands[args.command](args)
        if STOP_REQUESTED.is_set():  # a SIGTERM whose exception a destructor swallowed
            raise KeyboardInterrupt
        return code
    except (ValueError, KeyError, ImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        if isinstance(exc, ParameterError):
            message = flag_message(parser, args.command, exc)
        parser.exit(2, f"st-matryoshka: error: {message.splitlines()[0] if message else type(exc).__name__}\n")
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        parser.exit(2, f"st-matryoshka: error: {where}{exc.strerror or exc}\n")
    except KeyboardInterrupt:
        if STOP_REQUESTED.is_set():
            parser.exit(143, "st-matryoshka: terminated (SIGTERM); nothing was saved by the unfinished step\n")
        parser.exit(130, "st-matryoshka: interrupted; nothing was saved by the unfinished step\n")
    finally:
        signal.signal(signal.SIGTERM, previous)
        STOP_REQUESTED.clear()


if __name__ == "__main__":
    sys.exit(main())
