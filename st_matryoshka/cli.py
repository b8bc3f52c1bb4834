"""Command-line entry point ``st-matryoshka``: parse the flags, call :mod:`st_matryoshka.api`, print.

The flags live in :mod:`st_matryoshka.cli_parser`. Errors from below arrive as
:class:`~st_matryoshka._validation.ParameterError` naming a library parameter; :func:`flag_message` turns it into
the command's flag, so only this module speaks of flags.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import fields

from st_matryoshka import api, pipeline
from st_matryoshka._io import check_writable_file, write_file_atomic
from st_matryoshka._validation import ParameterError
from st_matryoshka.callbacks import STOP_REQUESTED
from st_matryoshka.cli_parser import build_parser, parse_dims, split_list
from st_matryoshka.config import METHOD_CONFIGS, AdaptorTrainingConfig, BackboneSource, SMECTrainingConfig
from st_matryoshka.loading import resolve_model_path
from st_matryoshka.metadata import METADATA_FILE
from st_matryoshka.quantization import pareto_fronts
from st_matryoshka.vectordb import DATABASES

logger = logging.getLogger("st_matryoshka")


def source(args: argparse.Namespace) -> BackboneSource:
    """The backbone source of a command's flags.

    Where the backbone vectors come from (``--embeddings``, ``--cache-dir``, ``--batch-size``, ``--device``) and
    whether the model may run its own code (``--trust-remote-code``).
    """
    return BackboneSource(
        embeddings=getattr(args, "embeddings", None),
        cache_dir=getattr(args, "cache_dir", None),
        batch_size=args.batch_size,
        device=parse_device(args),
        trust_remote_code=getattr(args, "trust_remote_code", False),
    )


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


def cmd_mteb(args: argparse.Namespace) -> int:
    scores = api.mteb(
        args.model,
        parse_dims(args.dims),
        args.output,
        data=args.data,
        tasks=split_list(args.tasks),
        split=args.split,
        precisions=split_list(args.precision),
        model_name=args.model_name,
        revision=args.revision,
        source=source(args),
    )
    for task, by_dim in scores.items():
        print(task + "  " + "  ".join(f"{dim}: {value:.4f}" for dim, value in by_dim.items()))
    return 0


def training_overrides(args: argparse.Namespace) -> dict:
    """Training-config keyword arguments from the flags ``train`` and ``fit-vectors`` share (set ones only).

    Each flag's ``dest`` is the config field it sets, so this is the set flags whose names are config fields.
    """
    known = {f.name for f in fields(SMECTrainingConfig)} - {"dims"}
    given = {k: v for k, v in vars(args).items() if k in known and v is not None}
    if args.method != "smec":
        smec_only = sorted(known - {f.name for f in fields(AdaptorTrainingConfig)} & given.keys())
        if smec_only or args.temperature is not None:
            names = [f"--{k.replace('_', '-')}" for k in smec_only] + ["--temperature"] * (
                args.temperature is not None
            )
            raise ValueError(f"{'/'.join(names)} need --method smec, got --method {args.method}")
    if args.temperature is not None:
        given["temperature_start"], given["temperature_end"] = args.temperature
    return given


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
    dims = parse_dims(args.dims)  # a malformed --dims fails before anything is loaded
    config = METHOD_CONFIGS[args.method](dims=dims, supervised=args.supervised, **training_overrides(args))
    trained = pipeline.train(
        args.model,
        args.data,
        config,
        args.output,
        source=source(args),
        train_split=args.train_split,
        default_dim=args.default_dim,
        overwrite=args.overwrite,
    )
    print_stages(trained.stages)
    print(f"saved to {args.output}")
    return 0


def cmd_fit_vectors(args: argparse.Namespace) -> int:
    dims = parse_dims(args.dims)
    paths = (args.queries, args.qrels, args.corpus_ids, args.query_ids, args.column, args.overwrite)
    vectors, data = api.vector_inputs(args.corpus, dims, args.output, args.method, *paths)
    supervised = data.qrels is not None
    config = METHOD_CONFIGS[args.method](dims=dims, supervised=supervised, **training_overrides(args))
    trained = pipeline.train(vectors, data, config, args.output, overwrite=args.overwrite)
    print_stages(trained.stages)
    print(f"trained dims {trained.metadata.dims}; saved to {args.output}")
    return 0


def cmd_apply_vectors(args: argparse.Namespace) -> int:
    rows = api.apply_vectors_file(args.model, args.input, args.dim, args.output, args.precision, args.overwrite)
    print(f"wrote {rows} x {args.dim}-d {args.precision} vectors to {args.output}")
    return 0


def cmd_extend(args: argparse.Namespace) -> int:
    extended = api.extend(
        args.model,
        parse_dims(args.dims),
        args.output,
        data=args.data,
        allow_any_dims=args.allow_any_dims,
        overwrite=args.overwrite,
        source=source(args),
    )
    for stage in extended.stages:
        if stage.best is not None:
            print(f"{stage.name}: best {stage.metric} = {stage.best:.4f} at step {stage.best_step}")
    print(f"trained dims {extended.adaptor.trained_dims}; saved to {args.output}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    precisions = split_list(args.precision)
    if args.json:
        check_writable_file(args.json, "--json")
        if os.path.exists(args.json) and not args.overwrite:
            raise ValueError(f"--json: {args.json!r} exists; pass --overwrite to replace it")
        if api.json_inside_model(args.json, args.model):
            raise ValueError(f"--json: {args.json!r} is inside the model folder {args.model!r}; write it elsewhere")
    by_precision = api.evaluate(
        args.model,
        args.data,
        parse_dims(args.dims),
        split=args.split,
        precisions=precisions,
        rescore=args.rescore,
        record=args.record,
        source=source(args),
    )
    for precision, result in by_precision.items():
        if len(by_precision) > 1 or precision != "float32":
            print(f"== {precision}" + (f", rescored from the top {args.rescore}" if args.rescore else ""))
        print(f"{'dim':>6}  {'bytes':>6}  {'NDCG@10':>8}  {'Recall@100':>10}")
        for dim, ndcg in result["ndcg_at_10"].items():
            size, recall = result["bytes_per_vector"][dim], result["recall_at_100"][dim]
            print(f"{dim:>6}  {size:>6}  {ndcg:>8.4f}  {recall:>10.4f}")
    if args.json:
        if len(by_precision) == 1:  # the float32 shape, keyed by dim
            (only,) = by_precision.values()
            value = {k: only[k] for k in ("ndcg_at_10", "recall_at_100")}
        else:
            value = by_precision
        write_json_atomic(args.json, value, "--json", overwrite=args.overwrite)
    if args.record:
        print(f"recorded in {os.path.join(resolve_model_path(args.model), METADATA_FILE)} and its card")
    return 0


def write_json_atomic(path: str, value: object, argument: str, overwrite: bool = False) -> None:
    """Write ``value`` as JSON to a new ``path``, or replace it with ``overwrite`` (``_io.write_file_atomic``)."""
    write_file_atomic(path, json.dumps(value, indent=2).encode("utf-8"), overwrite=overwrite, argument=argument)


def cmd_frontier(args: argparse.Namespace) -> int:
    rows = api.frontier(
        args.model,
        args.data,
        parse_dims(args.dims),
        args.output,
        split=args.split,
        precisions=split_list(args.precision),
        rescore=args.rescore,
        record=args.record,
        speed=args.speed,
        source=source(args),
        overwrite=args.overwrite,
    )
    for method, front in pareto_fronts(rows).items():
        points = ", ".join(f"{r['bytes']} B {r['dim']}-d {r['precision']} {r['ndcg_at_10']:.4f}" for r in front)
        print(f"{method}: {points}")
    print(f"wrote {args.output}/frontier.md, frontier.json, frontier.png")
    if args.record:
        print(f"recorded in {os.path.join(resolve_model_path(args.model), METADATA_FILE)} and its card")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    exported = api.export_model(
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
    url = api.push_to_hub(
        args.model,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        default_dim=args.default_dim,
        license=args.license,
    )
    print(f"pushed to {args.repo_id}: {url}")
    return 0


def index_target(args: argparse.Namespace) -> str:
    """Where ``index build`` writes or ``index search`` reads: the folder, or the database's URI, folder or URL."""
    engine = args.engine or "faiss"
    given = {flag: getattr(args, flag.strip("-").replace("-", "_")) for flag in ("--uri", "--path", "--url")}
    folder = args.output if args.index_command == "build" else args.index
    folder_flag = "--output" if args.index_command == "build" else "--index"
    wanted = {"milvus": ["--uri"], "qdrant": ["--path", "--url"]}.get(engine, [folder_flag])
    set_flags = [flag for flag, value in {**given, folder_flag: folder}.items() if value]
    if len(set_flags) != 1 or set_flags[0] not in wanted:
        raise ValueError(f"--engine {engine} takes {' or '.join(wanted)} (exactly one), got {set_flags or 'none'}")
    return folder or next(value for value in given.values() if value)


def cmd_index(args: argparse.Namespace) -> int:
    target = index_target(args)
    if args.index_command == "build":
        index = api.index_build(
            args.model,
            target,
            args.dim,
            precision=args.precision,
            data=args.data,
            vectors=args.vectors,
            ids=args.ids,
            rescore_store=args.rescore_store,
            kind=args.kind,
            engine=args.engine,
            collection=args.collection,
            source=source(args),
        )
        if args.engine in DATABASES:
            print(f"indexed {index.info.count} documents as {args.dim}-d {args.precision} in {args.engine} {target}")
            return 0
        sizes = ", ".join(f"{name} {size:,} B" for name, size in index.nbytes().items())
        print(f"indexed {index.info.count} documents as {args.dim}-d {args.precision} ({args.kind}): {sizes}")
        return 0
    scores, ids = api.index_search(
        target,
        args.queries,
        top_k=args.top_k,
        rescore=args.rescore,
        model=args.model,
        engine=args.engine,
        source=source(args),
        collection=args.collection,
    )
    lines = [
        json.dumps({"query": i, "ids": row, "scores": [round(float(v), 6) for v in scores[i][: len(row)]]})
        for i, row in enumerate(ids)
    ]
    if args.output:
        write_file_atomic(args.output, ("\n".join(lines) + "\n").encode("utf-8"), argument="--output")
    else:
        print("\n".join(lines))
    return 0


# Library parameters whose command-line flag is not the parameter's name with dashes: for every command, then per
# command.
COMMON_FLAGS = {"precisions": "--precision", "path_or_id": "--data", "default_dim": "--default-dim"}
FLAG_OF = {
    "train": {
        "corpus_vectors": "--embeddings",
        "qrels": "--train-split",
        "config": "--method",
    },
    "fit-vectors": {"corpus_vectors": "--corpus", "supervised": "--qrels", "config": "--method"},
    "extend": {"dim": "--dims", "corpus_vectors": "--embeddings", "qrels": "--data"},
}


def flag_message(parser: argparse.ArgumentParser, command: str, exc: ParameterError) -> str:
    """``exc``'s message with the library's parameter names replaced by ``command``'s flags for them.

    The parameter the error is about becomes its flag (``dim`` → ``--dims`` for ``extend``); other snake_case
    parameter names it mentions become their flags where ``command`` has one (``allow_any_dims`` →
    ``--allow-any-dims``).
    """
    import re

    leaf = parser
    for name in command.split():  # "index build": the nested sub-command's own flags
        subparsers = [a for a in leaf._actions if isinstance(a, argparse._SubParsersAction)]
        leaf = subparsers[0].choices[name] if subparsers else leaf
    options = {o for a in leaf._actions for o in a.option_strings}
    flags = {**COMMON_FLAGS, **FLAG_OF.get(command, {})}
    flag = flags.get(exc.parameter, "--" + exc.parameter.replace("_", "-"))
    message = exc.with_name(flag) if flag in options else str(exc)

    def to_flag(match: re.Match) -> str:
        candidate = "--" + match.group(1).replace("_", "-")
        return candidate if candidate in options else match.group(0)

    message = re.sub(r"(?<![\w-])([a-z]+(?:_[a-z0-9]+)*)=True\b", to_flag, message)  # "overwrite=True": a switch
    return re.sub(r"(?<![\w-])([a-z]+(?:_[a-z0-9]+)+)\b", to_flag, message)


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
            "index": cmd_index,
        }
        code = commands[args.command](args)
        if STOP_REQUESTED.is_set():  # a SIGTERM whose exception a destructor swallowed
            raise KeyboardInterrupt
        return code
    except (ValueError, KeyError, ImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        if isinstance(exc, ParameterError):
            command = f"{args.command} {args.index_command}" if args.command == "index" else args.command
            message = flag_message(parser, command, exc)
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
