"""The library behind the Streamlit pages: bundle -> search -> sky/cutouts -> heads -> figures."""
