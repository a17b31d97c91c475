"""A real HTTP server on 127.0.0.1 that speaks enough of Sesame, SkyView and hips2fits.

It serves the real VLA FIRST FITS bytes of ``../shared/data/mirabest``: a request whose
position lies inside one of those images gets that image (as SkyView produced it); elsewhere
it answers like the services do where a survey has no data (a blank image). The real
astroquery/astropy clients are pointed at it through their configured addresses.

- ``stall_seconds``: every answer waits that long first (timeouts).
- ``hold_downloads_after``: SkyView FITS downloads past that many wait until ``release()`` (a client
  caught mid-batch, whatever the machine's load); ``holding`` is set while one waits.
- ``hits``: requests per endpoint (cache hits and misses).
"""
from __future__ import annotations

import gzip
import html
import io
import itertools
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord
from astropy.io import fits

from tests.sky_fixtures import MIRABEST

FIRST_HALF_WIDTH_ARCSEC = 75 * 1.8  # the MiraBest images are 150 px of 1.8"
SKYVIEW_SURVEYS = ("VLA FIRST (1.4 GHz)", "NVSS", "DSS")
HIPS_SURVEYS = ("CDS/P/FIRST",)
# Real Sesame answers (SIMBAD positions)
SESAME_NAMES = {"m 31": (10.68470833, 41.26875), "3c 273": (187.27791535, 2.05238857)}

SKYVIEW_FORM = """<html><body><h1>SkyView Query Form</h1>
<form method="get" action="runquery.pl" name="form1">
<input type="text" name="Position" value="">
<select name="survey" id="survey-radio" multiple>{options}</select>
<input type="text" name="pixels" value="300">
<input type="radio" name="coordinates" value="J2000" checked>
<input type="radio" name="coordinates" value="Galactic">
<input type="submit" value="Submit"><input type="reset" value="Reset">
</form></body></html>"""


class SurveyServer:
    def __init__(self, stall_seconds: float = 0.0):
        catalog = pd.read_csv(MIRABEST / "catalog.csv")
        self.files = [MIRABEST / f for f in catalog["file"]]
        self.centres = SkyCoord(catalog["ra"].to_numpy() * u.deg, catalog["dec"].to_numpy() * u.deg)
        self.stall_seconds = stall_seconds
        self.hold_downloads_after: int | None = None
        self._released = threading.Event()
        self.holding = threading.Event()
        self.hits: Counter = Counter()
        self._served: dict[str, bytes] = {}
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.sesame_url = f"{self.base}/sesame/"
        self.skyview_url = f"{self.base}/skyview/basicform.pl"
        self.hips2fits_url = f"{self.base}/hips2fits"

    def __enter__(self):
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------ what the services would answer

    def first_image_at(self, coord: SkyCoord) -> bytes | None:
        """The real FIRST file whose 150x150 footprint holds ``coord`` (decompressed FITS bytes)."""
        coord = coord.icrs
        i = int(np.argmin(self.centres.separation(coord).arcsec))
        dlon, dlat = self.centres[i].spherical_offsets_to(coord)
        if max(abs(dlon.to_value(u.arcsec)), abs(dlat.to_value(u.arcsec))) > FIRST_HALF_WIDTH_ARCSEC:
            return None
        return gzip.decompress(self.files[i].read_bytes())

    def release(self) -> None:
        """Let held downloads go (and every later one)."""
        self._released.set()

    def keep(self, data: bytes) -> str:
        with self._lock:
            token = f"skv{next(self._tokens)}"
            self._served[token] = data
        return token


def blank_image(coord: SkyCoord, pixels: int, fov_deg: float, fill: float) -> bytes:
    """What a service answers where the survey has no data: a blank image on the requested grid."""
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = coord.icrs.ra.deg, coord.icrs.dec.deg
    h["CRPIX1"] = h["CRPIX2"] = (pixels + 1) / 2
    h["CDELT1"], h["CDELT2"] = -fov_deg / pixels, fov_deg / pixels
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.full((pixels, pixels), fill, np.float32), h).writeto(buffer)
    return buffer.getvalue()


def _handler_for(server: SurveyServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            if server.stall_seconds:
                time.sleep(server.stall_seconds)
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                if url.path.startswith("/sesame/"):
                    self._sesame(unquote(url.query))
                elif url.path == "/skyview/basicform.pl":
                    self._count("skyview-form")
                    options = "".join(f"<option>{html.escape(s)}</option>" for s in SKYVIEW_SURVEYS)
                    self._send(200, "text/html", SKYVIEW_FORM.format(options=options).encode())
                elif url.path == "/skyview/runquery.pl":
                    self._skyview_query(query)
                elif url.path.startswith("/skyview/tempspace/fits/"):
                    self._count("skyview-fits")
                    if server.hold_downloads_after is not None and server.hits["skyview-fits"] > server.hold_downloads_after:
                        server.holding.set()
                        server._released.wait(120)
                    token = url.path.rsplit("/", 1)[-1].removesuffix(".fits")
                    data = server._served.get(token)
                    self._send(200 if data else 404, "application/fits", data or b"gone")
                elif url.path == "/hips2fits":
                    self._hips2fits(query)
                else:
                    self._send(404, "text/plain", b"not found")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def _count(self, kind: str):
            with server._lock:
                server.hits[kind] += 1

        def _send(self, status: int, ctype: str, body: bytes):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _sesame(self, name: str):
            self._count("sesame")
            found = SESAME_NAMES.get(" ".join(name.split()).lower())
            lines = [f"# {name}\t#Q1234"]
            if found:
                c = SkyCoord(*found, unit="deg")
                lines += ["#=S=Simbad (via url):    1", f"%J {found[0]:.8f} {found[1]:+.8f} = "
                          f"{c.to_string('hmsdms', sep=':', precision=2)}", "#====Done (2026-Nov-22,05:00:00z)===="]
            else:
                lines += ["#! *** Nothing found *** ", "#====Done (2026-Nov-22,05:00:00z)===="]
            self._send(200, "text/plain", ("\n".join(lines) + "\n").encode())

        def _skyview_query(self, query: dict):
            self._count("skyview-query")
            if query.get("survey") not in SKYVIEW_SURVEYS:
                self._send(200, "text/html", b"<html><body>Unknown survey</body></html>")
                return
            ra, dec = (float(v) for v in query["Position"].replace(",", " ").split())
            coord = SkyCoord(ra * u.deg, dec * u.deg, frame="fk5")
            pixels = int(query.get("pixels", "300").split(",")[0])
            fov = float(query.get("size", "0.075").split(",")[0])
            data = server.first_image_at(coord) or blank_image(coord, pixels, fov, 0.0)
            token = server.keep(data)
            body = (f'<html><body><table><tr><td><a href="tempspace/fits/{token}.fits">FITS</a></td>'
                    f'<td><a href="tempspace/fits/{token}.jpg">Quicklook</a></td></tr></table></body></html>')
            self._send(200, "text/html", body.encode())

        def _hips2fits(self, query: dict):
            self._count("hips2fits")
            if query.get("hips") not in HIPS_SURVEYS:
                body = f'{{"title": "Bad request", "description": "HiPS {query.get("hips")} not found"}}'
                self._send(422, "application/json", body.encode())
                return
            coord = SkyCoord(float(query["ra"]) * u.deg, float(query["dec"]) * u.deg)
            data = server.first_image_at(coord) or blank_image(coord, int(query["width"]), float(query["fov"]), np.nan)
            self._send(200, "application/fits", data)

    return Handler


def closed_port_url(path: str = "/") -> str:
    """An address on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
