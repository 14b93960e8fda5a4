"""Device placement: CPU here; the `gpu`-marked tests run where CUDA exists (skipped otherwise)."""

from __future__ import annotations

import pytest
import torch

from provenance.arch.view import open_model
from provenance.errors import InvalidParameterError
from provenance.io.convert import resolve_device, resolve_dtype

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_auto_device_and_dtype_names():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("bf16") is torch.bfloat16
    with pytest.raises(InvalidParameterError, match=r"The 'dtype' parameter of resolve_dtype must be one of .* "
                                                    r"Got 'int3' instead\."):
        resolve_dtype("int3")


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(InvalidParameterError, match=r"must be 'cpu' or 'auto' on a machine without CUDA"):
        resolve_device("cuda")


@pytest.mark.gpu
@cuda
def test_roles_stream_to_cuda_identically(tiny_llama):
    folder, _ = tiny_llama
    with open_model(folder) as m:
        for role in ("embed", "layers.1.attn.q", "layers.2.mlp.down"):
            cpu = m.tensor(role, dtype="float32")
            gpu = m.tensor(role, device="cuda", dtype="float32")
            assert gpu.device.type == "cuda"
            assert torch.equal(gpu.cpu(), cpu)
            assert torch.equal(m.tensor(role, device="cuda", dtype="bf16").float().cpu(), cpu.bfloat16().float())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_neuron_matching_on_cuda_matches_cpu():
    import numpy as np

    from provenance.stats.neurons import neuron_match

    rng = np.random.default_rng(1)
    g, u = rng.standard_normal((300, 96)), rng.standard_normal((300, 96))
    perm = rng.permutation(96)
    cpu = neuron_match(g, u, g[:, perm], u[:, perm], seed=0)
    gpu = neuron_match(g, u, g[:, perm], u[:, perm], seed=0, device="cuda")
    assert (cpu.agreement, cpu.in_place) == (gpu.agreement, gpu.in_place)
    assert np.array_equal(cpu.matching, gpu.matching)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_activation_capture_on_cuda_in_bf16():
    from provenance.activations.positions import aligned_positions
    from provenance.signals.activations import open_runner
    from tests.real_models import MINILM_DIR, require

    runner = open_runner(require(MINILM_DIR), device="cuda")
    enc = runner.encode(["The river bends twice before it reaches the sea."])
    pos, _, _ = aligned_positions(enc, enc, per_text=8)
    cap = runner.capture(enc, pos)
    assert runner.dtype == torch.bfloat16 and cap.residual.shape[:2] == (6, len(pos[0]))


@pytest.mark.gpu
@cuda
def test_fingerprint_on_cuda_matches_cpu(tiny_llama):
    """The builder streams roles to CUDA and projects there; what it keeps equals the CPU build to rounding."""
    import numpy as np

    from provenance.fingerprint import fingerprint
    from provenance.fingerprint.weights import fingerprint_weight_evidence

    folder, _ = tiny_llama
    cpu, gpu = fingerprint(folder, device="cpu"), fingerprint(folder, device="cuda")
    np.testing.assert_allclose(gpu.profiles, cpu.profiles, rtol=2e-3)
    for mode, sketches in cpu.sketches.items():
        for key, s in sketches.items():
            np.testing.assert_allclose(gpu.sketches[mode][key].rows, s.rows, rtol=2e-3, atol=1e-4)
    w = fingerprint_weight_evidence(cpu, gpu)
    assert w.map_facts["identity"] and w.similarity["direct_cosine"] > 0.9999
