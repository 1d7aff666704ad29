"""``attnviz data ...`` subcommands: prepare task data into the cache.

    attnviz data prepare nli [--force] [--archive bigbench-1.0.0.tar.gz] [--no-progress]

:func:`add_data_commands` adds the ``data`` command to the ``attnviz`` parser's subparsers; each
leaf sets ``run`` (returns the exit code) and ``parser`` (for one-line errors), as in ``attnviz.cli``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DATASETS = ("nli",)


def add_data_commands(subparsers) -> None:
    """Add ``data prepare <name>`` to the ``attnviz`` command's ``subparsers``."""
    data = subparsers.add_parser(
        "data", help="prepare task data into the attnviz cache (offline once prepared)",
        description="Prepare task data once into the attnviz cache ($ATTNVIZ_CACHE or ~/.cache/attnviz), "
                    "as JSONL files with a manifest of sha256 checksums.")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "prepare", help="build a data set in the cache (nli: from the BIG-bench sdist)",
        description="nli: fetch the BIG-bench 1.0.0 sdist once with pip (358 MB; skipped when it is already in "
                    "<cache>/downloads), read the VitaminC and presuppositions_as_nli task files from it in one "
                    "pass, split by claim/evidence group and write <cache>/data/nli/*.jsonl + manifest.json.")
    p.add_argument("name", choices=DATASETS, help="the data set to prepare")
    p.add_argument("--force", action="store_true", help="rebuild even if a valid prepared copy exists")
    p.add_argument("--archive", type=Path, default=None, metavar="PATH",
                   help="a local bigbench-1.0.0.tar.gz to read instead of the cached / fetched one")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_prepare, parser=p)


def _run_prepare(args: argparse.Namespace) -> int:
    from .nli import prepare_nli

    if args.archive is not None and not args.archive.is_file():
        raise ValueError(f"--archive {args.archive}: no such file")
    prepared = prepare_nli(force=args.force, progress=not args.no_progress, archive=args.archive)
    source = prepared.manifest["source"]
    verb = "wrote" if prepared.fresh else "already prepared (checksums verified; --force rebuilds)"
    print(f"{verb}: {prepared.directory}")
    print(f"from {source['archive']} ({source['package']}=={source['version']}, sha256 {source['sha256']})")
    print(prepared.summary())
    print(f"manifest: {prepared.directory / 'manifest.json'}")
    return 0
