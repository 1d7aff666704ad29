"""Task data: preparation into the attnviz cache, loading with ``datasets``.

``prepare_nli()`` / ``attnviz data prepare nli`` builds the offline NLI data once from the
BIG-bench sdist; ``load_nli(split, source)`` returns a ``datasets.Dataset`` of premise /
hypothesis / label. See ``data/README.md`` for the recipe, the manifest and the licences.
"""

from .nli import LABELS, OFFLINE_SOURCES, SOURCES, Prepared, load_nli, prepare_nli, read_manifest, verify_nli
from .sources import BIGBENCH, FetchError, SdistSource, cache_dir, data_dir, downloads_dir, fetch_sdist, read_members

__all__ = ["LABELS", "OFFLINE_SOURCES", "SOURCES", "Prepared", "load_nli", "prepare_nli", "read_manifest",
           "verify_nli", "BIGBENCH", "FetchError", "SdistSource", "cache_dir", "data_dir", "downloads_dir",
           "fetch_sdist", "read_members"]
