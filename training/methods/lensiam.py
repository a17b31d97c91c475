"""LenSiam (Huang et al.; paper 5): SimSiam whose positive pair is two renderings of one lens.

The two views share the 8 mass parameters (θ_E, e1, e2, θ1, θ2, γ, γ1, γ2) and differ in source,
lens light, PSF and noise (:mod:`training.lenses`, ``sim:lens?...&pairs=1``), so what the views have
in common, and what the encoder must keep, is the lens physics. The loss, projector and predictor are
SimSiam's; only the views differ.
"""
from __future__ import annotations

from training.methods import register
from training.methods.simsiam import SimSiam


@register("lensiam")
class LenSiam(SimSiam):
    views = "simulated_pairs"
    partners = True
