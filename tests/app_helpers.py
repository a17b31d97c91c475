"""Reading the explorer's own elements out of an AppTest run."""
import json


def galleries(app) -> list[str]:
    """The HTML of every clickable thumbnail gallery (a components.v2 element), in page order."""
    return [json.loads(element.proto.json) for element in app.get("bidi_component")
            if element.proto.component_name == "explorer.gallery"]
