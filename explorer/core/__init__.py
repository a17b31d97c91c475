"""The core both halves use: bundle -> search -> sky/cutouts -> heads, and the parts under them
(errors, atomic writes, FITS, surveys, preprocessing, backbones). Nothing here imports Streamlit or ``training``."""
