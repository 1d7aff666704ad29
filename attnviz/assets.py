"""The JavaScript libraries attnviz inlines into offline pages, fetched once with npm.

bertviz's views and exported widget pages load their libraries from CDNs, so they stay blank on a
laptop without network. attnviz keeps exact copies of the few files those pages need in a local
folder and inlines them instead:

* ``d3``: ``d3@5.7.0`` ``dist/d3.min.js`` (bertviz head / model view)
* ``jquery``: ``jquery@2.2.4`` ``dist/jquery.min.js`` (bertviz views)
* ``require``: ``requirejs@2.3.6`` ``require.js`` (bertviz views, widget HTML exports)
* ``embed-amd``: ``@jupyter-widgets/html-manager@1.0.15`` ``dist/embed-amd.js`` (widget HTML
  exports: nbconvert's ``--HTMLExporter.widget_renderer_url``)
* ``anywidget``: ``anywidget@0.11.0`` ``dist/index.js``, saved as ``anywidget.js`` (widget HTML
  exports: the AMD module ``anywidget``, ``require.config({paths: {anywidget: "<dir>/anywidget"}})``)

The folder is ``$ATTNVIZ_JS_DIR`` if set, else ``<sys.prefix>/share/attnviz/js`` (inside the
virtual environment). ``make setup`` fills it with::

    python -m attnviz.assets install

which runs ``npm pack`` for the pinned versions (npm checks each tarball's integrity), copies out
only the files above and writes ``manifest.json`` (package, version, file, size, sha256). The
folder is assembled next to its final place and renamed into it, so it is either complete or
absent. ``python -m attnviz.assets status`` says what is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Asset:
    """One file of one pinned npm package."""

    name: str       # how attnviz asks for it
    package: str    # npm package name
    version: str    # exact version
    file: str       # path inside the package

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def filename(self) -> str:
        """File name in the asset folder, e.g. ``d3.min.js``."""
        return Path(self.file).name if self.name != "anywidget" else "anywidget.js"


ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset("d3", "d3", "5.7.0", "dist/d3.min.js"),
    Asset("jquery", "jquery", "2.2.4", "dist/jquery.min.js"),
    Asset("require", "requirejs", "2.3.6", "require.js"),
    Asset("embed-amd", "@jupyter-widgets/html-manager", "1.0.15", "dist/embed-amd.js"),
    Asset("anywidget", "anywidget", "0.11.0", "dist/index.js"),
)}

MANIFEST = "manifest.json"
INSTALL_HINT = "run `python -m attnviz.assets install` (make setup does it; needs npm)"


def asset_dir() -> Path:
    """Where the assets live: ``$ATTNVIZ_JS_DIR`` or ``<sys.prefix>/share/attnviz/js``."""
    env = os.environ.get("ATTNVIZ_JS_DIR")
    return Path(env).expanduser() if env else Path(sys.prefix) / "share" / "attnviz" / "js"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _check_name(name: str) -> Asset:
    if name not in ASSETS:
        raise ValueError(f"unknown offline JS asset {name!r}; known: {', '.join(ASSETS)}")
    return ASSETS[name]


def asset_path(name: str) -> Path:
    """The local file of asset ``name`` (one of :data:`ASSETS`), or ``FileNotFoundError`` that
    says how to install it."""
    asset = _check_name(name)
    folder = asset_dir()
    path = folder / asset.filename
    entry = _read_manifest(folder).get("assets", {}).get(name)
    if not path.is_file() or not entry or entry.get("version") != asset.version:
        raise FileNotFoundError(
            f"offline JS asset {name!r} ({asset.spec} {asset.file}) missing in {folder}; {INSTALL_HINT}"
        )
    return path


def read_asset(name: str) -> str:
    """The text of asset ``name``, checked against the manifest's sha256."""
    path = asset_path(name)
    data = path.read_bytes()
    want = _read_manifest(path.parent)["assets"][name]["sha256"]
    if hashlib.sha256(data).hexdigest() != want:
        raise ValueError(f"offline JS asset {name!r} at {path} does not match its manifest sha256; "
                         f"reinstall with `python -m attnviz.assets install --force`")
    return data.decode("utf-8")


def status(dest: str | os.PathLike | None = None) -> dict[str, str]:
    """``{name: "ok" | "missing" | "wrong version" | "corrupt"}`` for every asset in ``dest``
    (default :func:`asset_dir`)."""
    folder = Path(dest) if dest is not None else asset_dir()
    entries = _read_manifest(folder).get("assets", {})
    out = {}
    for name, asset in ASSETS.items():
        path, entry = folder / asset.filename, entries.get(name)
        if not path.is_file() or not entry:
            out[name] = "missing"
        elif entry.get("version") != asset.version:
            out[name] = "wrong version"
        elif _sha256(path) != entry.get("sha256"):
            out[name] = "corrupt"
        else:
            out[name] = "ok"
    return out


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found on PATH; attnviz needs it once to fetch its offline JS assets "
                           f"({', '.join(a.spec for a in ASSETS.values())}). Install Node.js, then {INSTALL_HINT}")
    return npm


def _pack(specs: list[str], into: Path) -> dict[str, Path]:
    """``npm pack`` each spec into ``into``; returns {spec: tarball}."""
    cmd = [_npm(), "pack", "--json", "--silent", "--pack-destination", str(into), *specs]
    try:
        proc = subprocess.run(cmd, cwd=into, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"`{' '.join(cmd)}` took more than 600 s; is the npm registry reachable?") from e
    if proc.returncode != 0:
        raise RuntimeError(f"`npm pack {' '.join(specs)}` failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
    start = proc.stdout.find("[")  # npm may print notices before the JSON
    packed = json.loads(proc.stdout[start:])
    out = {}
    for info in packed:
        out[f"{info['name']}@{info['version']}"] = into / info["filename"]
    missing = [s for s in specs if s not in out]
    if missing:
        raise RuntimeError(f"npm pack did not produce {missing}; it produced {sorted(out)}")
    return out


def install_assets(dest: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Fetch every asset in :data:`ASSETS` with ``npm pack`` into ``dest`` (default
    :func:`asset_dir`) and write its manifest. Does nothing when all are present and intact,
    unless ``force``. The folder is built beside ``dest`` and renamed into place. Returns ``dest``.
    """
    dest = Path(dest) if dest is not None else asset_dir()
    if not force and all(s == "ok" for s in status(dest).values()):
        return dest
    if dest.exists() and not (dest / MANIFEST).is_file() and (not dest.is_dir() or any(dest.iterdir())):
        raise RuntimeError(f"{dest} exists and is not an attnviz asset folder (no {MANIFEST}); "
                           "point ATTNVIZ_JS_DIR at an empty or new folder")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except PermissionError as e:
        raise RuntimeError(f"cannot write to {dest.parent} ({e.strerror}); set ATTNVIZ_JS_DIR to a writable folder") from e
    try:
        stage = work / "stage"
        stage.mkdir()
        tarballs = _pack([a.spec for a in ASSETS.values()], work)
        manifest = {"format": 1, "assets": {}}
        for name, asset in ASSETS.items():
            with tarfile.open(tarballs[asset.spec], "r:gz") as tf:
                member = tf.extractfile(f"package/{asset.file}")  # npm tarballs hold package/...
                if member is None:
                    raise RuntimeError(f"{asset.spec} has no file {asset.file}")
                data = member.read()
            (stage / asset.filename).write_bytes(data)
            manifest["assets"][name] = {
                "package": asset.package, "version": asset.version, "file": asset.file,
                "path": asset.filename, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            }
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.chmod(stage, 0o755)
        if dest.exists():  # swap: the old folder goes into `work` and is removed with it
            os.replace(dest, work / "old")
        os.replace(stage, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m attnviz.assets",
                                     description="Offline JS libraries for bertviz views and widget HTML exports.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="fetch the pinned files with npm (once; needs the npm registry)")
    p_install.add_argument("--dest", default=None, help=f"folder (default $ATTNVIZ_JS_DIR or {asset_dir()})")
    p_install.add_argument("--force", action="store_true", help="fetch again even if all files are intact")
    p_status = sub.add_parser("status", help="list the assets and whether they are installed")
    p_status.add_argument("--dest", default=None)
    args = parser.parse_args(argv)

    if args.command == "install":
        try:
            before = status(args.dest)
            dest = install_assets(args.dest, force=args.force)
        except RuntimeError as e:
            print(f"attnviz.assets: {e}", file=sys.stderr)
            return 1
        fresh = args.force or any(s != "ok" for s in before.values())
        print(f"offline JS assets {'installed in' if fresh else 'already in'} {dest}")
        return 0
    folder = Path(args.dest) if args.dest else asset_dir()
    st = status(folder)
    print(f"offline JS assets in {folder}:")
    for name, s in st.items():
        print(f"  {name:10s} {ASSETS[name].spec:40s} {ASSETS[name].file:22s} {s}")
    return 0 if all(s == "ok" for s in st.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
