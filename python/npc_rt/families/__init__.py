"""Backbone families: what differs per backbone (components, text inputs, latent layout).

``flux`` is implemented; SDXL and SD3 follow the same pattern (issue 4).
"""

from __future__ import annotations

from npc_rt.families import flux

FAMILIES = {flux.FAMILY: flux}

__all__ = ["FAMILIES", "flux"]
