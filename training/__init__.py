"""Self-supervised training: data -> simulate -> augment/views -> methods -> train -> embed (bundle)."""
