"""The latent-space explorer.

- :mod:`explorer.core`: what training and the app share (the bundle contract, FITS, preprocessing,
  backbones, search, heads, sky look-ups); no Streamlit.
- :mod:`explorer.app`: the Streamlit app's own modules (ui, views, latent_map and map_server, jobs), behind ``app.py``
  and ``pages/``.
"""
