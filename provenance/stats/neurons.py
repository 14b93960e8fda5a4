"""Matched-neuron tests on MLP activations: is the candidate's neuron *i* the base's neuron *i*?

Two statistics per layer, each with its null:
- **in place**: neurons whose best activation match keeps its index. If the candidate's
  neuron labels are exchangeable (independent training from an i.i.d. initialisation), each
  base neuron lands on its own index with probability 1/f, so the count is ~Poisson(f_a/f_b).
- **gate/up agreement** (gated MLPs; Zhu et al., ICML 2025): match neurons by gate outputs and
  by up outputs separately. A derived model — permuted or not — gives the same matching
  twice; an independent one does not. The chance rate comes from the data: the probe
  samples of the candidate are shuffled, which keeps each model's own gate/up coupling but
  breaks any correspondence between the models.

>>> rng = np.random.default_rng(0)
>>> g, u = rng.standard_normal((400, 64)), rng.standard_normal((400, 64))
>>> perm = rng.permutation(64)
>>> r = neuron_match(g, u, g[:, perm], u[:, perm], null_draws=4, seed=0)
>>> r.agreement, r.in_place <= 0.1, r.p_agreement < 1e-30
(1.0, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from provenance.stats.tails import poisson_sf


@dataclass
class NeuronMatch:
    """One layer pair: matching agreement, neurons kept in place, and their p-values."""

    agreement: float | None  # fraction of base neurons whose gate and up matches coincide
    chance_agreement: float | None  # the same fraction with the candidate's samples shuffled
    p_agreement: float | None
    in_place: float  # fraction of base neurons matched to the same index
    p_in_place: float
    matching: np.ndarray  # int [f_a]: best candidate neuron per base neuron (gate view, or the only view)


def _standardize(x: np.ndarray, device: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
    t = t - t.mean(dim=0)
    sd = t.std(dim=0, unbiased=False)
    return torch.where(sd > 1e-12, t / sd.clamp_min(1e-12), torch.zeros_like(t))


def _best(za: torch.Tensor, zb: torch.Tensor) -> np.ndarray:
    """For every base neuron, the candidate neuron its activations correlate with most."""
    return torch.argmax(za.T @ zb, dim=1).cpu().numpy()


def _poisson_p(k: int, mean: float) -> float:
    return float(max(poisson_sf(k - 1, max(mean, 1e-12)), 1e-300)) if k > 0 else 1.0


def neuron_match(gate_a: np.ndarray, up_a: np.ndarray | None, gate_b: np.ndarray, up_b: np.ndarray | None, *,
                 null_draws: int = 4, seed: int = 0, null_neurons: int = 512, device: str = "cpu") -> NeuronMatch:
    """Match neurons of two MLP layers from [n samples, f neurons] activations (same samples, same order).

    The f_a × f_b correlations are the cost (n·f² per view); `device="cuda"` runs them on a GPU.
    """
    za, zb = _standardize(gate_a, device), _standardize(gate_b, device)
    f_a, f_b = za.shape[1], zb.shape[1]
    m_gate = _best(za, zb)
    in_place = int(np.count_nonzero(m_gate[:min(f_a, f_b)] == np.arange(min(f_a, f_b))))
    p_place = _poisson_p(in_place, f_a / f_b)
    if up_a is None or up_b is None:
        return NeuronMatch(None, None, None, in_place / f_a, p_place, m_gate)
    ua, ub = _standardize(up_a, device), _standardize(up_b, device)
    agree = int(np.count_nonzero(m_gate == _best(ua, ub)))
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(f_a, size=min(null_neurons, f_a), replace=False))
    hits = 0
    for _ in range(null_draws):
        perm = torch.as_tensor(rng.permutation(len(zb)), device=zb.device)
        hits += int(np.count_nonzero(_best(za[:, sub], zb[perm]) == _best(ua[:, sub], ub[perm])))
    chance = max(hits / (null_draws * len(sub)), 1.0 / f_b)  # never below the uniform rate
    return NeuronMatch(agree / f_a, chance, _poisson_p(agree, chance * f_a), in_place / f_a, p_place, m_gate)
