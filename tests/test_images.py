"""The thumbnails as the browser gets them: the radio colour map, PNG round trips, the gallery's HTML."""
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

from explorer.app.images import GalleryItem, colour_table, data_uri, gallery_html, png_bytes, to_rgb
from explorer.core.preprocess import COLORMAP


def test_colour_table_is_the_radio_colour_map():
    table = colour_table()
    assert COLORMAP == "inferno" and table.shape == (256, 3) and table.dtype == np.uint8
    expected = np.round(colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255)
    np.testing.assert_array_equal(table, expected)


def test_png_round_trip_keeps_the_shared_stretch(explorer_bundle):
    thumbnail = np.asarray(explorer_bundle.thumbnails[0])
    decoded = np.asarray(Image.open(io.BytesIO(png_bytes(thumbnail))).convert("RGB"))
    np.testing.assert_array_equal(decoded, colour_table()[thumbnail])
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 200
    np.testing.assert_array_equal(to_rgb(rgb), rgb)  # three-band thumbnails are already colour
    assert data_uri(thumbnail).startswith("data:image/png;base64,")


def test_gallery_escapes_text_and_marks_the_query(explorer_bundle):
    image = np.asarray(explorer_bundle.thumbnails[0])
    html = gallery_html([GalleryItem(image, "<query&1>", ("query",), highlight=True),
                         GalleryItem(image, "J1234+5678", ("cos 0.912",))])
    assert html.count("<figure") == 2 and html.count('class="query"') == 1
    assert "&lt;query&amp;1&gt;" in html and "<query&1>" not in html
    assert "cos 0.912" in html and html.count("data:image/png;base64,") == 2
