"""Reading the explorer's own elements out of an AppTest run."""
import json

import numpy as np

from explorer.app import map_server


def galleries(app) -> list[str]:
    """The HTML of every clickable thumbnail gallery (a components.v2 element), in page order."""
    return [json.loads(element.proto.json) for element in app.get("bidi_component")
            if element.proto.component_name == "explorer.gallery"]


def map_data(app, key: str = "explore.map") -> dict:
    """The data the map component got on this run (its JSON: legend, marks, array URLs)."""
    found = [json.loads(element.proto.json) for element in app.get("bidi_component")
             if element.proto.component_name == "explorer.map"]
    return next(data for data in found if data["key"] == key)


def drawn_rows(app, key: str = "explore.map") -> np.ndarray:
    """The rows the map component draws on this run, read from the arrays its URLs name."""
    data = map_data(app, key)
    latent_map = map_server.served(data["token"])
    if data["keep"] is None:
        return np.flatnonzero(latent_map.placed)
    return np.flatnonzero(np.frombuffer(latent_map.by_key[data["keep"].rsplit("/", 1)[1]], dtype=np.uint8))
