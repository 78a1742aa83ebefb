"""A simulated embedder for the testbed: what a program means (its skills) dominates, wording barely moves it.

Vector = skill indicators (distance >= 1 between programs with different skill sets) + a small hashed
bag of the other words, scaled to norm `wording_scale` (a cosmetic rewrite moves it by at most
2 * wording_scale). So an eps between 2 * wording_scale and 1 rejects exactly the near-duplicates.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .problem import SKILLS

DEFAULT_EPS = 0.5
"""The eps-Net radius that separates cosmetic rewrites (< 0.2) from skill edits (>= 1) for this embedder."""


@dataclass(frozen=True)
class TestbedEmbedder:
    """Implements `Embedder`: skill indicators plus a `wording_scale`-norm hash of the other words."""

    __test__ = False

    skills: tuple[str, ...] = SKILLS
    wording_dims: int = 16
    wording_scale: float = 0.1
    name: str = "testbed-skills+wording (simulated embedder)"

    def _wording(self, text: str) -> np.ndarray:
        v = np.zeros(self.wording_dims)
        for word in re.findall(r"[a-z]+", text.lower()):
            if word not in self.skills:
                v[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                  % self.wording_dims] += 1.0
        norm = np.linalg.norm(v)
        return v * (self.wording_scale / norm) if norm else v

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.skills) + self.wording_dims))
        for i, text in enumerate(texts):
            words = set(re.findall(r"[a-z]+", text.lower()))
            out[i, : len(self.skills)] = [float(s in words) for s in self.skills]
            out[i, len(self.skills):] = self._wording(text)
        return out
