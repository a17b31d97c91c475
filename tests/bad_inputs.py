"""The bad-input table: every input here must get a clear message (or a counted skip), never a
traceback, never a silent success, never a lost file.

Shared by ``tests/test_bad_inputs.py`` (one test per case) and ``python -m benchmarks.bad_inputs``
(the tally). Each :class:`Case` runs against a :class:`Workspace` of real artefacts built once: a
tiny trained checkpoint, a bundle with an encoder, and FITS catalogue folders made from the real
FIRST images in ``../shared/data/mirabest`` (cases that need them are skipped without it).

Outcomes:

- ``clean``: the expected one-line message (CLI: exit 2, one ``error:`` line; library: an
  InputError; pages: an error box and no exception), or the expected skip;
- ``traceback``: any other exception escaped;
- ``silent``: it succeeded, or failed with another message, where this message was due;
- ``data loss``: a protected file changed or vanished.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import re
import shutil
import threading
import traceback
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from astropy.io import fits

from explorer.core.errors import InputError

REPO = Path(__file__).resolve().parents[1]
MIRABEST = REPO.parent / "shared" / "data" / "mirabest"
OUTCOMES = ("clean", "traceback", "silent", "data loss")

TINY_CONFIG = {
    "name": "tiny", "method": "byol", "seed": 0,
    "encoder": {"architecture": "resnet18", "in_channels": 1},
    "data": {"pixels": 150, "pixel_scale_arcsec": 1.8},
    "preprocessing": {"clip_sigma": 3.0, "crop_pixels": 70, "input_pixels": 32},
    "optim": {"epochs": 1, "batch_size": 8, "base_lr": 0.2, "warmup_epochs": 0},
}


class NeedsSharedData(Exception):
    """The case needs the real FIRST images in ../shared/data, which are absent."""


@dataclass
class Workspace:
    root: Path

    def path(self, *parts) -> Path:
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @cached_property
    def config_file(self) -> Path:
        return self.write_config("tiny.yaml", TINY_CONFIG)

    def write_config(self, name: str, values) -> Path:
        import yaml

        path = self.path("configs", name)
        path.write_text(values if isinstance(values, str) else yaml.safe_dump(values))
        return path

    @cached_property
    def checkpoint(self) -> Path:
        from training.config import config_from_dict
        from training.train import train

        return train(config_from_dict(TINY_CONFIG), "sim:radio?n=16&seed=0", self.path("run"), progress=False)

    @cached_property
    def bundle(self) -> Path:
        from training.embed import embed_to_bundle

        return embed_to_bundle(self.checkpoint, "sim:radio?n=16&seed=0", self.path("bundles", "tiny"), progress=False)

    def copy_bundle(self, name: str) -> Path:
        out = self.path("bundles", name)
        shutil.copytree(self.bundle, out)
        return out

    @cached_property
    def first_file(self) -> Path:
        if not (MIRABEST / "catalog.csv").is_file():
            raise NeedsSharedData(f"real FIRST images not found at {MIRABEST}")
        return MIRABEST / pd.read_csv(MIRABEST / "catalog.csv")["file"].iloc[0]

    def first_header_and_data(self) -> tuple[fits.Header, np.ndarray]:
        with fits.open(self.first_file) as hdul:
            return hdul[0].header.copy(), np.asarray(hdul[0].data, dtype=np.float32).copy()

    def fits_folder(self, name: str, rows: list[dict], extra_columns: dict | None = None) -> Path:
        """A FITS catalogue folder of real FIRST images; each of ``rows`` says how its file is damaged:
        ``header`` cards to set, ``data`` (a function of the pixels), ``gzip``, ``corrupt_crc``, and
        ``radec``: the catalogue position (default: the image centre; ``"edge"``: its corner)."""
        from astropy.wcs import WCS

        folder = self.path(name, "catalog.csv").parent
        header, data = self.first_header_and_data()
        records = []
        for i, row in enumerate(rows):
            h = header.copy()
            for key, value in row.get("header", {}).items():
                h[key] = value
            pixels = row["data"](data.copy()) if "data" in row else data
            buffer = io.BytesIO()
            fits.PrimaryHDU(pixels, h).writeto(buffer, output_verify="ignore")
            body = buffer.getvalue()
            file = f"src{i}.fits"
            if row.get("gzip"):
                file, body = file + ".gz", gzip.compress(body, mtime=0)
                if row.get("corrupt_crc"):
                    body = body[:-8] + bytes(8 * [0x5A])  # the gzip trailer: CRC32 and length
            (folder / file).write_bytes(body)
            radec = row.get("radec", (header["CRVAL1"], header["CRVAL2"]))
            if radec == "edge":
                corner = WCS(header).celestial.pixel_to_world(0, 0)
                radec = (corner.ra.deg, corner.dec.deg)
            records.append({"file": file, "ra": radec[0], "dec": radec[1], **(extra_columns or {}).get(i, {})})
        pd.DataFrame(records).to_csv(folder / "catalog.csv", index=False)
        return folder

    def precious_folder(self, name: str) -> Path:
        folder = self.path(name, "notes.txt").parent
        (folder / "notes.txt").write_text("my notes: keep me\n")
        (folder / "catalog.csv").write_text("file,ra,dec\nx.fits,1,2\n")
        return folder

    def precious_file(self, name: str) -> Path:
        path = self.path(name)
        path.write_text("my results\n")
        return path


@dataclass
class Case:
    id: str
    surface: str                                  # cli, library or page
    run: Callable[[Workspace], object]            # returns a CLI argv, or does the library/page call
    expect: str                                   # regex of the message (or skip reason)
    protect: Callable[[Workspace], list[Path]] = field(default=lambda ws: [])


@dataclass
class Result:
    case: Case
    outcome: str
    detail: str = ""


# ---------------------------------------------------------------- running a case

def _snapshot(paths: list[Path]) -> dict[str, str]:
    files = {}
    for p in paths:
        for f in ([p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())):
            files[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return files


def run_case(case: Case, ws: Workspace) -> Result:
    """Run one case; raises NeedsSharedData when its real FIRST images are absent."""
    argv = [str(a) for a in case.run(ws)] if case.surface == "cli" else None  # builds the inputs
    protected = case.protect(ws)
    before = _snapshot(protected)
    try:
        message = _run_cli(argv[0], argv[1:]) if argv else _run_call(case, ws)
    except _Traceback as e:
        return Result(case, "traceback", str(e))
    after = _snapshot(protected)
    if before != after or (protected and not before):
        lost = sorted(k for k in before if before[k] != after.get(k))
        return Result(case, "data loss", f"changed or gone: {lost[:3]}")
    if message is None or not re.search(case.expect, message):
        return Result(case, "silent", f"expected /{case.expect}/, got {message!r}")
    return Result(case, "clean", message)


class _Traceback(Exception):
    pass


def _run_call(case: Case, ws: Workspace) -> str | None:
    try:
        value = case.run(ws)
    except InputError as e:
        if "\n" in str(e):
            raise _Traceback(f"a message of several lines: {e!r}") from None
        return str(e)
    except NeedsSharedData:
        raise
    except Exception:
        raise _Traceback(traceback.format_exc(limit=-3)) from None
    return None if value is None else str(value)  # a returned value is a skip reason or a page's error text


def _run_cli(module: str, argv: list[str]) -> str | None:
    """``python -m module argv`` in this process: its stderr when it exits 2 with one error line."""
    import importlib

    main = importlib.import_module(module).main
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as e:
        code = e.code
    except NeedsSharedData:
        raise
    except BaseException:
        raise _Traceback(traceback.format_exc(limit=-3)) from None
    text = err.getvalue()
    if "Traceback" in text:
        raise _Traceback(text)
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    if code != 2 or len(errors) != 1:
        return None if code in (0, None) else f"exit {code}: {text[-300:]}"
    return errors[0]


# ---------------------------------------------------------------- loopback servers with bad answers

class BadServer:
    """A real HTTP server on 127.0.0.1 that answers every request with ``body`` (or never answers)."""

    def __init__(self, body: bytes = b"<html><body>Service temporarily moved</body></html>", stall: float = 0.0):
        self.body, self.stall = body, stall
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if owner.stall:
                    owner.release.wait(owner.stall)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- the cases

def _embed(ws, out, *extra):
    return ["training.embed", "--checkpoint", ws.checkpoint, "--data", "sim:radio?n=16&seed=0", "--out", out, *extra]


def _train(ws, config=None, out=None, *extra):
    return ["training.train", "--config", config or ws.config_file, "--data", "sim:radio?n=16&seed=0",
            "--out", out or ws.path("runs", "new"), *extra]


def _config_case(case_id: str, change: dict | str, expect: str) -> Case:
    def run(ws):
        if isinstance(change, str):
            return _train(ws, ws.write_config(f"{case_id}.yaml", change))
        values = json.loads(json.dumps(TINY_CONFIG))
        for dotted, value in change.items():
            section, key = dotted.split(".")
            values[section][key] = value
        return _train(ws, ws.write_config(f"{case_id}.yaml", values))
    return Case(f"config: {case_id}", "cli", run, expect)


def _catalogue_skip(case_id: str, rows: list[dict], expect: str) -> Case:
    """A FITS folder whose first row is good and second is bad: one image loads, the bad one is a skip."""
    def run(ws):
        from explorer.core.fitsio import load_fits_catalogue

        folder = ws.fits_folder(f"catalogues/{case_id}", [{}, *rows])
        images, catalog, _, skipped = load_fits_catalogue(folder, progress=False, workers=1)
        if len(catalog) != 1 or len(skipped) != len(rows):
            return f"loaded {len(catalog)}, skipped {skipped}"
        return skipped[0][1]
    return Case(f"catalogue row: {case_id}", "library", run, expect)


def _tampered(case_id: str, damage: Callable[[Path], None], expect: str, then: Callable = None, *,
              kind: str = "tampered bundle") -> Case:
    def run(ws):
        from explorer.core.bundle import load_bundle

        b = ws.copy_bundle(f"tampered-{re.sub(r'[^a-z0-9]+', '-', case_id)}")
        damage(b)
        bundle = load_bundle(b)
        if then is None:
            return "opened without complaint"
        then(bundle)
        return "used without complaint"
    return Case(f"{kind}: {case_id}", "library", run, expect)


def _write_manifest(b: Path, change: Callable[[dict], object]) -> None:
    manifest = json.loads((b / "manifest.json").read_text())
    (b / "manifest.json").write_text(json.dumps(change(manifest)))


def _catalog_change(b: Path, change: Callable[[pd.DataFrame], None]) -> None:
    catalog = pd.read_parquet(b / "catalog.parquet")
    change(catalog)
    catalog.to_parquet(b / "catalog.parquet", index=False)
    _write_manifest(b, lambda m: {**m, "files": {k: v for k, v in m["files"].items() if k != "catalog.parquet"}})


def _flip_a_bit(path: Path, offset_fraction: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * offset_fraction)] ^= 0x10
    path.write_bytes(bytes(data))


def _head(ws_bundle: Path) -> None:
    from explorer.core.bundle import load_bundle
    from explorer.core.heads import HeadSpec, train_frozen_head

    train_frozen_head(load_bundle(ws_bundle), HeadSpec(column="morphology", name="h", head="knn", curve_points=0))


def _read_labels(bundle):
    from explorer.core.labels import read_labels

    return read_labels(bundle.path)


def _read_selections(bundle):
    from explorer.core.selections import read_selections
    return read_selections(bundle.path)


def _save_selection(bundle, name):
    from explorer.core.selections import save_selection
    return save_selection(bundle, name, [0, 1])


def _parse_filter(bundle, text):
    from explorer.core.filters import parse_filter
    return parse_filter(text, bundle.catalog)


def _load_head(bundle):
    from explorer.core.heads import load_head

    return load_head(bundle.path, "h")


def _upload(scale_deg: float, resample: bool, data=None) -> Callable:
    def run(ws):
        from explorer.core.sky.upload import read_uploaded_fits

        header, image = ws.first_header_and_data()
        header["CDELT1"], header["CDELT2"] = -scale_deg, scale_deg
        buffer = io.BytesIO()
        fits.PrimaryHDU(image[:24, :24] if data is None else data(image), header).writeto(buffer, output_verify="ignore")
        read_uploaded_fits(buffer.getvalue(), "upload.fits", expected_pixel_scale_arcsec=1.8, resample=resample)
        return "accepted"
    return run


def _coordinates(text: str) -> Callable:
    def run(ws):
        from explorer.core.sky.names import position_of

        from tests.survey_server import closed_port_url

        return f"resolved to {position_of(text, urls=[closed_port_url()], cache_dir=ws.path('cache'))}"
    return run


def _sesame_garbage(ws):
    from explorer.core.sky.names import resolve_name

    with BadServer() as server:
        resolve_name("M 31", urls=[server.url], cache_dir=ws.path("cache"), retries=0)
    return "resolved"


def _skyview_garbage(ws):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from explorer.core.sky.cutouts import SkyViewProvider

    with BadServer() as server:
        SkyViewProvider(url=server.url, timeout=5, retries=0, cache_dir=ws.path("cache")).cutout(
            SkyCoord(150 * u.deg, 2 * u.deg), 270, 150)
    return "fetched"


def _typed_bundle(text: Callable[[Workspace], str]) -> Callable:
    """Type ``text`` into the sidebar's folder box; the page's error text (an exception is a traceback)."""
    def run(ws):
        import os

        from streamlit.testing.v1 import AppTest

        previous = os.environ.get("EXPLORER_BUNDLES")
        os.environ["EXPLORER_BUNDLES"] = str(ws.bundle.parent)
        try:
            app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
            box = next(t for t in app.sidebar.text_input if t.label == "…or open a bundle folder")
            box.input(text(ws)).run()
        finally:
            os.environ.pop("EXPLORER_BUNDLES") if previous is None else os.environ.update(EXPLORER_BUNDLES=previous)
        if app.exception:
            raise RuntimeError(app.exception[0].value)
        shown = " | ".join(e.value for e in app.sidebar.error)
        if str(ws.root) in shown:
            return f"echoed a server path: {shown}"
        return shown or "no message"
    return run


def _symlink_loop(ws) -> str:
    loop = ws.bundle.parent / "loop"
    if not loop.is_symlink():
        loop.symlink_to(loop)
    return "loop"


def _simulate_into(ws, out):
    return ["training.simulate", "--n", 3, "--out", out]


OUTSIDE = "only bundles inside the explorer's bundle folder"

CASES: list[Case] = [
    # --out of every CLI that writes a folder: nothing that is not its own kind is ever replaced
    Case("embed --out = the data folder", "cli", lambda ws: _embed(ws, ws.fits_folder("data", [{}, {}])),
         "exists and is not a bundle", lambda ws: [ws.root / "data"]),
    Case("embed --out = a folder of notes", "cli", lambda ws: _embed(ws, ws.precious_folder("notes")),
         "exists and is not a bundle", lambda ws: [ws.root / "notes"]),
    Case("embed --out = an existing file", "cli", lambda ws: _embed(ws, ws.precious_file("results.txt")),
         "is a file", lambda ws: [ws.root / "results.txt"]),
    Case("embed --out under a file", "cli", lambda ws: _embed(ws, ws.precious_file("r.txt") / "bundle"),
         "is under .* which is a file", lambda ws: [ws.root / "r.txt"]),
    Case("embed --out = a bundle without --overwrite", "cli", lambda ws: _embed(ws, ws.bundle),
         "add --overwrite", lambda ws: [ws.bundle]),
    Case("embed --out unwritable", "cli", lambda ws: _embed(ws, "/proc/self/bundles/x"), "cannot write in"),
    Case("embed --shard out = a bundle", "cli", lambda ws: _embed(ws, ws.bundle, "--shard", "0/2"),
         "not a shard folder", lambda ws: [ws.bundle]),
    Case("embed --merge out = the data folder", "cli",
         lambda ws: ["training.embed", "--merge", ws.precious_folder("shard-x"), "--out", ws.fits_folder("data2", [{}])],
         "exists and is not a bundle", lambda ws: [ws.root / "data2"]),
    Case("embed --batch-size 0", "cli", lambda ws: _embed(ws, ws.path("b0"), "--batch-size", "0"), "--batch-size must be"),
    Case("embed --shard 5/2", "cli", lambda ws: _embed(ws, ws.path("s"), "--shard", "5/2"), "i must be 0 to n-1"),
    Case("train --out = a folder of notes", "cli", lambda ws: _train(ws, out=ws.precious_folder("notes2")),
         "not a training run", lambda ws: [ws.root / "notes2"]),
    Case("train --out = a file", "cli", lambda ws: _train(ws, out=ws.precious_file("run.txt")), "is a file",
         lambda ws: [ws.root / "run.txt"]),
    Case("train --out under a file", "cli", lambda ws: _train(ws, out=ws.precious_file("run2.txt") / "r"), "which is a file",
         lambda ws: [ws.root / "run2.txt"]),
    Case("train --out unwritable", "cli", lambda ws: _train(ws, out="/proc/self/runs/x"), "cannot write in"),
    Case("simulate --out = a folder of notes", "cli", lambda ws: _simulate_into(ws, ws.precious_folder("notes3")),
         "not a simulated catalogue", lambda ws: [ws.root / "notes3"]),
    Case("simulate --out = a file", "cli", lambda ws: _simulate_into(ws, ws.precious_file("sim.txt")), "is a file",
         lambda ws: [ws.root / "sim.txt"]),
    Case("fetch --out = a folder of notes", "cli",
         lambda ws: ["training.fetch", "--catalog", ws.fits_folder("data3", [{}]) / "catalog.csv", "--survey",
                     f"local:{ws.root / 'data3'}", "--size", "270", "--pixels", "150", "--out", ws.precious_folder("notes4")],
         "not a fetch folder", lambda ws: [ws.root / "notes4"]),
    Case("evaluate --out = a folder of notes", "cli",
         lambda ws: ["training.evaluate", "--bundle", ws.bundle, "--label-column", "morphology", "--labels", "4",
                     "--seeds", "1", "--head", "knn", "--out", ws.precious_folder("notes5")],
         "not a evaluation folder|not an evaluation folder", lambda ws: [ws.root / "notes5"]),
    Case("evaluate --test-fraction 0", "cli",
         lambda ws: ["training.evaluate", "--bundle", ws.bundle, "--label-column", "morphology", "--labels", "4",
                     "--head", "knn", "--test-fraction", "0", "--out", ws.path("ev")], "between 0 and 1"),
    Case("finetune --test-fraction 1", "cli",
         lambda ws: ["training.finetune", "--bundle", ws.bundle, "--label-column", "morphology", "--out-name", "x",
                     "--test-fraction", "1"], "between 0 and 1"),
    # configs: typed, validated when loaded
    _config_case("epochs six", {"optim.epochs": "six"}, "optim.epochs must be a whole number"),
    _config_case("batch size 0", {"optim.batch_size": 0}, "optim.batch_size must be within 2"),
    _config_case("base_lr fast", {"optim.base_lr": "fast"}, "optim.base_lr must be a finite number"),
    _config_case("base_lr nan", {"optim.base_lr": float("nan")}, "optim.base_lr must be a finite number"),
    _config_case("crop_scale scalar", "optim: {epochs: 1}\naugmentation: {crop_scale: 0.8}\n",
                 "crop_scale must be a list of 2 numbers"),
    _config_case("unknown architecture", {"encoder.architecture": "resnet9"}, "unknown value 'resnet9'"),
    _config_case("rotation 'no'", "optim: {epochs: 1}\naugmentation: {rotation: 'no'}\n", "rotation must be true or false"),
    _config_case("empty config", "", "is empty"),
    _config_case("epochs 0", {"optim.epochs": 0}, "optim.epochs must be within 1"),
    _config_case("unknown method", "method: simclr\noptim: {epochs: 1}\n", "unknown method 'simclr'; choose one of"),
    _config_case("map section in a recipe", "optim: {epochs: 1}\nmap: {pca_components: 8}\n", "belong to embedding"),
    _config_case("bands that are not a list", "optim: {epochs: 1}\ndata: {bands: radio}\n", "data.bands must be a list"),
    _config_case("unknown scaling", {"preprocessing.scaling": "log"}, "unknown value 'log'"),
    _config_case("calibrated without zero points", {"preprocessing.scaling": "calibrated"},
                 "calibrated scaling needs 1 zero point"),
    _config_case("another method's section", "method: byol\nsimsiam: {}\noptim: {epochs: 1}\n", "unknown key.*simsiam"),
    _config_case("crop larger than the cutout", {"preprocessing.crop_pixels": 200}, "larger than the cutouts"),
    Case("train --epochs 0", "cli", lambda ws: _train(ws, None, None, "--epochs", "0"), "--epochs must be at least 1"),
    Case("sim n=1e11", "cli", lambda ws: ["training.train", "--config", ws.config_file, "--data", "sim:radio?n=1e11",
                                          "--out", ws.path("r1")], "n must be a whole number"),
    Case("sim n=10^11", "cli", lambda ws: ["training.train", "--config", ws.config_file,
                                           "--data", "sim:radio?n=100000000000", "--out", ws.path("r2")], "n must be within"),
    Case("argparse: unknown flag", "cli", lambda ws: ["training.embed", "--bogus"], "unrecognized arguments|required"),
    # catalogue loads: one bad row is a counted skip, the others load
    _catalogue_skip("position outside the image", [{"radec": (10.0, -30.0)}], "outside the image"),
    _catalogue_skip("non-numeric CRVAL", [{"header": {"CRVAL1": "abc"}, "radec": (0, 0)}], ""),
    _catalogue_skip("CRC-corrupt .fits.gz", [{"gzip": True, "corrupt_crc": True}], "not a readable FITS file"),
    _catalogue_skip("all-zero image", [{"data": lambda d: np.zeros_like(d)}], "same value"),
    _catalogue_skip("constant image", [{"data": lambda d: np.full_like(d, 0.25)}], "same value"),
    _catalogue_skip("cutout mostly outside", [{"radec": "edge"}], "lies outside the image"),
    # uploads: bounded before anything is allocated
    Case("upload 90\"/px with resample", "library", _upload(90 / 3600, True), "more than 20x"),
    Case("upload 1 deg/px with resample", "library", _upload(1.0, True), "more than 20x"),
    Case("upload 30\"/px x 1000 px with resample", "library",
         _upload(30 / 3600, True, lambda d: np.tile(d, (4, 4))[:1000, :1000]), "would resample to"),
    Case("upload all-zero", "library", _upload(1.8 / 3600, False, lambda d: np.zeros_like(d)), "same value"),
    # tampered bundles: a message naming the file
    _tampered("manifest is a list", lambda b: _write_manifest(b, lambda m: [m]), "manifest.json: expected a JSON dict"),
    _tampered("manifest is null", lambda b: _write_manifest(b, lambda m: None), "manifest.json: expected a JSON dict"),
    _tampered("manifest is a string", lambda b: _write_manifest(b, lambda m: "bundle"), "manifest.json: expected a JSON dict"),
    _tampered("columns is a list", lambda b: _write_manifest(b, lambda m: {**m, "columns": ["ra"]}), "'columns' must be a dict"),
    _tampered("a column entry is a string", lambda b: _write_manifest(b, lambda m: {**m, "columns": {"ra": "deg"}}),
              "column entries must be"),
    _tampered("encoder is a string", lambda b: _write_manifest(b, lambda m: {**m, "encoder": "resnet"}), "'encoder' must be a dict"),
    _tampered("encoder.in_channels is text", lambda b: _write_manifest(
        b, lambda m: {**m, "encoder": {**m["encoder"], "in_channels": "one"}}), "encoder.in_channels must be a int"),
    _tampered("NaN ra", lambda b: _catalog_change(b, lambda c: c.__setitem__("ra", np.where(c.index == 3, np.nan, c["ra"]))),
              "missing or out-of-range ra/dec"),
    _tampered("dec 91", lambda b: _catalog_change(b, lambda c: c.__setitem__("dec", np.where(c.index == 0, 91.0, c["dec"]))),
              "missing or out-of-range ra/dec"),
    _tampered("duplicate ids", lambda b: _catalog_change(b, lambda c: c.__setitem__("id", ["same"] * len(c))),
              "repeats .* source id"),
    _tampered("corrupt predictions sidecar", lambda b: (b / "predictions").mkdir() or
              (b / "predictions" / "h.parquet").write_bytes(b"PAR1garbage"), "predictions/h.parquet: unreadable"),
    _tampered("corrupt labels", lambda b: (b / "labels.parquet").write_bytes(b"nope"), "labels.parquet: unreadable",
              then=lambda bundle: _read_labels(bundle)),
    _tampered("corrupt pca", lambda b: _flip_a_bit(b / "pca.npz", 0.05) or _write_manifest(b, lambda m: {
        **m, "files": {k: v for k, v in m["files"].items() if k != "pca.npz"}}), "pca.npz: unreadable|pca.npz: shapes",
        then=lambda bundle: bundle.pca()),
    _tampered("pca bit flip (checksums)", lambda b: _flip_a_bit(b / "pca.npz"), "pca.npz: checksum mismatch"),
    _tampered("corrupt encoder", lambda b: ((b / "encoder.safetensors").write_bytes(b"{}"), _write_manifest(b, lambda m: {
        **m, "files": {k: v for k, v in m["files"].items() if k != "encoder.safetensors"}})),
        "encoder.safetensors: unreadable", then=lambda bundle: bundle.encoder()),
    _tampered("corrupt head", lambda b: _head(b) or (b / "heads" / "h" / "head.safetensors").write_bytes(b"xx"),
              "head.safetensors: unreadable",
              then=lambda bundle: _load_head(bundle)),
    _tampered("head metadata is a list", lambda b: _head(b) or (b / "heads" / "h" / "head.json").write_text("[1]"),
              "head.json: expected a JSON dict",
              then=lambda bundle: _load_head(bundle)),
    _tampered("corrupt saved selections", lambda b: (b / "selections.json").write_text("{not json"),
              "selections.json", then=lambda bundle: _read_selections(bundle)),
    _tampered("saved selection without ids", lambda b: (b / "selections.json").write_text('{"a": {"ids": 3}}'),
              "selection 'a' has no id list", then=lambda bundle: _read_selections(bundle)),
    _tampered("a selection name with a slash", lambda b: None, "needs a name of 1-64 characters",
              then=lambda bundle: _save_selection(bundle, "my/pick"), kind="bundle input"),
    _tampered("a filter link that is not JSON", lambda b: None, "filter: not a filter this explorer wrote",
              then=lambda bundle: _parse_filter(bundle, "flux>3"), kind="bundle input"),
    _tampered("a filter link on a missing column", lambda b: None, "filter: no catalogue column 'nope'",
              then=lambda bundle: _parse_filter(bundle, '[["nope", 1, 2]]'), kind="bundle input"),
    _tampered("index of the wrong dimension", lambda b: _wrong_dimension_index(b), "index.faiss is 8-d"),
    _tampered("index bit flip", lambda b: _flip_a_bit(b / "index.faiss"), "index.faiss: checksum mismatch"),
    _tampered("index truncated", lambda b: (b / "index.faiss").write_bytes((b / "index.faiss").read_bytes()[:100]),
              "index.faiss: .* bytes where the manifest says"),
    # coordinates typed as numbers are coordinate errors, never sent to the resolver
    Case("coordinates 'nan nan'", "library", _coordinates("nan nan"), "cannot read RA"),
    Case("coordinates 'inf 0'", "library", _coordinates("inf 0"), "cannot read RA"),
    Case("coordinates '1e309 0'", "library", _coordinates("1e309 0"), "cannot read RA"),
    Case("coordinates '0x10 0'", "library", _coordinates("0x10 0"), "cannot read RA"),
    Case("coordinates '12 95'", "library", _coordinates("12 95"), "out of range"),
    # services that answer garbage are not "unknown"
    Case("garbage Sesame reply", "library", _sesame_garbage, "unreadable answer"),
    Case("garbage SkyView reply", "library", _skyview_garbage, "not a SkyView answer"),
    # the bundle box in the sidebar
    Case("page: /etc", "page", _typed_bundle(lambda ws: "/etc"), OUTSIDE),
    Case("page: a missing absolute path", "page", _typed_bundle(lambda ws: "/no/such/folder"), OUTSIDE),
    Case("page: ~", "page", _typed_bundle(lambda ws: "~"), "no bundle named '~'"),  # not expanded: no home folder echoed
    Case("page: ../..", "page", _typed_bundle(lambda ws: "../.."), OUTSIDE),
    Case("page: NUL byte", "page", _typed_bundle(lambda ws: "tiny\x00x"), "not a folder name"),
    Case("page: 5,000 characters", "page", _typed_bundle(lambda ws: "a" * 5000), "not a folder name"),
    Case("page: symlink loop", "page", _typed_bundle(lambda ws: _symlink_loop(ws)), "cannot open that folder"),
    Case("page: a missing name", "page", _typed_bundle(lambda ws: "nope"), "no bundle named 'nope'"),
]


def _wrong_dimension_index(b: Path) -> None:
    import faiss

    n = len(np.load(b / "embeddings.npy", mmap_mode="r"))
    index = faiss.IndexFlatIP(8)
    index.add(np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32))
    faiss.write_index(index, str(b / "index.faiss"))
    _write_manifest(b, lambda m: {**m, "files": {k: v for k, v in m["files"].items() if k != "index.faiss"}})


def tally(results: list[Result]) -> dict[str, int]:
    return {outcome: sum(r.outcome == outcome for r in results) for outcome in OUTCOMES}
