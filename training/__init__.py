"""Self-supervised training: data -> simulate -> augment -> ssl methods -> train -> embed/bundle."""
