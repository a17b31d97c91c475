"""The Streamlit app's own modules: ``ui`` (layout glue), ``views`` and ``latent_map`` (what pages show, testable
without Streamlit), ``headplots``, ``images`` and ``jobs`` (background heads and fine-tune subprocesses)."""
