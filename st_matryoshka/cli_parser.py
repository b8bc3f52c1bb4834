"""The ``st-matryoshka`` command line's flags: one sub-parser per command (:func:`build_parser`).

Flags that set a training-config field carry the field's name as their ``dest`` (``--no-smrl`` sets ``smrl``), so
:func:`st_matryoshka.cli.training_overrides` passes them on without a table; ``choices`` come from the library's own
constants.
"""

from __future__ import annotations

import argparse

from st_matryoshka._validation import check_dims
from st_matryoshka.config import ACTIVATIONS, BIT_THRESHOLDS, CORPUS_MODES, METHODS
from st_matryoshka.data import VALIDATION_SPLITS
from st_matryoshka.index import ENGINES, KINDS, STORES
from st_matryoshka.quantization import PRECISIONS
from st_matryoshka.vectordb import DATABASES


def split_list(text: str | None) -> list[str]:
    """A comma-separated flag value as a list of its non-empty parts."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


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
        choices=list(METHODS),
        help="pca: the centred-PCA baseline as a linear module (nothing trained); search-adaptor: one linear map "
        "trained with the rank loss over every prefix (supervised only); smec: SMEC (SMRL + ADS + S-XBM).",
    )
    parser.add_argument("--output", required=True, help="Folder for the trained model.")
    parser.add_argument("--overwrite", action="store_true", help="Replace a model already in --output.")
    parser.add_argument(
        "--no-pca-init", dest="pca_init", action="store_false", default=None, help="Start from the identity, not PCA."
    )
    parser.add_argument(
        "--precision",
        dest="precisions",
        type=split_list,
        default=None,
        help="Comma-separated index precisions to train for (quantisation-aware): float32 (default), int8, binary.",
    )
    parser.add_argument(
        "--center", dest="center_input", action="store_const", const=True, help="Centre inputs on the corpus mean."
    )
    parser.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        default=None,
        help="The adaptor MLP's activation (default gelu); tanh is the one text-embeddings-inference runs.",
    )
    parser.add_argument(
        "--balance-bits",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Rotate the start's coordinates between consecutive --dims for even sign bits (ITQ); prefix similarities "
        "are unchanged. Default: on with --precision binary (not for --method smec; with pca: PCA-ITQ).",
    )
    parser.add_argument(
        "--bit-thresholds",
        choices=list(BIT_THRESHOLDS),
        default=None,
        help="Per-coordinate thresholds before the sign bits, set from the corpus and trained by the terms on codes "
        "(part of the output, so plain sentence-transformers reproduces the codes). Default: none.",
    )
    parser.add_argument(
        "--code-guard",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="After binary training, keep the full-width sign bits that held-out documents score best: the trained "
        "ones, or the last block (largest trained dim to the width) as the base model's own coordinates, plain or "
        "centred. Smaller prefixes are unchanged. Default: on with --precision binary (not for --method smec).",
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
        help="How --supervised holds out its validation queries: both (default: queries whose documents no "
        "training query cites, and as many by a hash of the id; the second choose, the first must not fall), "
        "document-disjoint (the first kind only: for a corpus that grows with documents no label cites) or "
        "query-hash (the second only). Too connected qrels fall back to query-hash.",
    )
    parser.add_argument(
        "--corpus-mode",
        dest="corpus_mode",
        choices=list(CORPUS_MODES),
        default=None,
        help="The deployment --supervised protects: fixed (default: the corpus stays, new queries come; the guard "
        "chooses and checks on held-out queries about cited documents and reports what queries about uncited "
        "documents lose) or growing (documents no label cites will arrive: those queries must not fall either).",
    )
    parser.add_argument(
        "--interpolation-steps",
        type=int,
        default=None,
        help="The guard scores (1-a)*unsupervised + a*supervised weights for a = 0, 1/N, ..., 1 and keeps the best "
        "that no validation kind puts below the unsupervised adaptor at any dim (default 10; 1: keep or drop).",
    )
    parser.add_argument(
        "--guard-tolerance",
        type=float,
        default=None,
        help="How far below the unsupervised adaptor, at any dim, the guard lets validation fall (default 0.005).",
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
    off = {"action": "store_false", "default": None}
    group.add_argument("--no-smrl", dest="smrl", **off, help="Train all dims jointly (MRL-style), not stage by stage.")
    group.add_argument("--no-ads", dest="ads", **off, help="Keep the first dims at each stage (no learned selection).")
    group.add_argument("--no-xbm", dest="xbm", **off, help="In-batch neighbours instead of the cross-batch memory.")
    group.add_argument("--memory-size", type=int, default=None, help="Cross-batch memory entries (default 5000).")
    group.add_argument(
        "--temperature", type=parse_temperature, help="Gumbel temperature schedule START,END (default 0.5,0.05)."
    )
    on = {"action": "store_const", "const": True}
    group.add_argument("--allow-any-dims", **on, help="Accept dims that are not successive halvings.")
    group.add_argument(
        "--stage-lr-multiplier", type=float, default=None, help="Stage learning rate / body learning rate (default 5)."
    )
    group.add_argument(
        "--no-stage-pca-init",
        dest="stage_pca_init",
        **off,
        help="Start each stage from where it was left (the previous embedding's truncation), not from PCA of it.",
    )
    group.add_argument(
        "--unsupervised-body-early-stop",
        **on,
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
        **on,
        help="The first SMRL stage trains the body with the loss over every dim (as the Matryoshka-Adaptor does), "
        "not over D and D/2 only.",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="st-matryoshka", description="Learned Matryoshka adaptors for Sentence-Transformers embeddings."
    )
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
    front.add_argument("--overwrite", action="store_true", help="Replace frontier files already in --output.")
    front.add_argument(
        "--record",
        action="store_true",
        help="Also store the points in the model folder's st_matryoshka.json; its card then shows and plots them.",
    )
    front.add_argument(
        "--speed",
        action="store_true",
        help="Add queries per second of an exact FAISS index at each dim x precision (needs the index extra).",
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
    _index_options(sub)
    return parser


def _index_options(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="Build and search a FAISS index of a model's codes (needs the index extra).")
    commands = index.add_subparsers(dest="index_command", required=True)
    build = commands.add_parser("build", help="Index a corpus at one dim and precision.")
    build.add_argument("--model", required=True, help="Model folder or name, or a fit-vectors folder.")
    corpus = build.add_mutually_exclusive_group(required=True)
    corpus.add_argument("--data", help="BEIR folder whose corpus is indexed (encoded, or from --embeddings).")
    corpus.add_argument("--vectors", help="(n, D) backbone vectors, .npy (memory-mapped).")
    build.add_argument("--ids", help="With --vectors: one id per row (default: row numbers).")
    build.add_argument("--dim", required=True, type=int, help="The prefix indexed (a trained dim is best).")
    build.add_argument(
        "--precision", default="binary", choices=list(PRECISIONS), help="Codes stored (default binary)."
    )
    build.add_argument(
        "--rescore-store", choices=list(STORES), help="Also keep int8 vectors on disk for search --rescore."
    )
    build.add_argument("--kind", default="flat", choices=list(KINDS), help="flat (exact) or hnsw (graph).")
    build.add_argument(
        "--engine",
        default="faiss",
        choices=[*ENGINES, *DATABASES],
        help="faiss (default) or usearch (float32 and binary codes) into --output; milvus (our codes and int8 "
        "rescoring vectors, into --uri) or qdrant (the float prefix with Qdrant's binary quantisation, into --path "
        "or --url): databases that scale out (needs the vectordb extra).",
    )
    build.add_argument("--output", help="New folder for the index (faiss, usearch).")
    _database_options(build)
    build.add_argument("--embeddings", help="With --data: corpus.npy / queries.npy instead of encoding.")
    build.add_argument("--cache-dir", help="Backbone embedding cache.")
    build.add_argument("--batch-size", type=int, default=32, help="Backbone encoding batch size.")
    _device(build)
    _trust(build)
    search = commands.add_parser("search", help="Top-k documents per query from an index folder.")
    search.add_argument("--index", help="Folder written by index build (faiss, usearch).")
    search.add_argument(
        "--engine", choices=list(DATABASES), help="Search a database collection instead: milvus or qdrant."
    )
    _database_options(search)
    search.add_argument("--queries", required=True, help="Query vectors (.npy, backbone) or a text file, one a line.")
    search.add_argument("--model", help="The model the index was built with (default: the one it records).")
    search.add_argument("--top-k", type=int, default=10, help="Documents per query.")
    search.add_argument("--rescore", type=int, help="Re-rank the top K by the float query against the int8 store.")
    search.add_argument("--output", help="Write the results as JSON lines here (default: standard output).")
    search.add_argument("--batch-size", type=int, default=32, help="Query encoding batch size.")
    _trust(search)


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uri", help="--engine milvus: a Milvus Lite file (runs/docs.db) or an http:// server URI.")
    parser.add_argument("--path", help="--engine qdrant: a folder for Qdrant's local mode.")
    parser.add_argument("--url", help="--engine qdrant: a Qdrant server or cluster URL.")
    parser.add_argument(
        "--collection", default="st_matryoshka", help="The database collection (default st_matryoshka)."
    )


def _publish_options(parser: argparse.ArgumentParser, repo_required: bool = False) -> None:
    parser.add_argument("--repo-id", required=repo_required, help="org/name on the Hub (named in the card).")
    parser.add_argument("--default-dim", type=int, help="One of the trained dims, saved as ST's truncate_dim.")
    parser.add_argument("--license", help="Licence identifier for the card (e.g. apache-2.0).")
    _trust(parser)


def parse_temperature(text: str) -> tuple[float, float]:
    """``--temperature START,END``: two numbers (the config checks they are finite and above 0)."""
    try:
        start, end = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be START,END (two numbers), got {text!r}") from None
    return start, end


def parse_dims(text: str, name: str = "--dims") -> list[int]:
    """Parse ``"192,96,48"`` into ``[192, 96, 48]``, with an error naming ``name`` on anything else."""
    try:
        dims = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{name} must be a comma-separated list of ints, got {text!r}") from None
    return check_dims(dims, name=name)
