"""Shared fixtures: tiny deterministic models built by the tests themselves, real SmolLM2 and its family
(built once and cached between runs), and the command line run in this process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.fixture_cache import cache_dir
from tests.tiny_models import tiny_llama_state, write_hf_dir

__all__ = ["cache_dir"]  # benchmarks/ import it from here


def pytest_report_header(config: pytest.Config) -> str:
    """Free disk where the suite writes: a full run needs about 14 GB (cached families + tmp copies)."""
    places = {"cache": cache_dir(), "tmp": Path(tempfile.gettempdir())}
    free = (f"{k} {shutil.disk_usage(p).free / 2**30:.1f} GiB ({p})" for k, p in places.items())
    return "disk free: " + ", ".join(free)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """(directory, state dict) of a 3-layer tiny Llama in HF layout."""
    state, config = tiny_llama_state()
    return write_hf_dir(tmp_path_factory.mktemp("tiny_llama"), state, config), state


@pytest.fixture(scope="session")
def smollm2_hf() -> Path:
    """SmolLM2-135M-Instruct dequantized from its GGUF by transformers: an HF directory, cached between runs."""
    from tests.smollm2_family import dequantized

    return dequantized()


@pytest.fixture(scope="session")
def smollm2_hf_tok(smollm2_hf: Path) -> Path:
    """`smollm2_hf` plus the tokenizer.json transformers converts from the GGUF (weights hard-linked)."""
    from tests.smollm2_family import with_tokenizer

    return with_tokenizer(smollm2_hf)


@pytest.fixture(scope="session")
def base(smollm2_hf: Path) -> tuple[Path, dict, dict]:
    """(directory, state, config) of `smollm2_hf`: the base of the SmolLM2 family (tests/smollm2_family.py)."""
    from tests.smollm2_family import load_base

    return load_base(smollm2_hf)


@pytest.fixture(scope="session")
def independent(base: tuple[Path, dict, dict]) -> list[Path]:
    """Two SmolLM2-shaped models trained briefly from their own random inits (cached between runs)."""
    from tests.smollm2_family import independent_models

    return independent_models(base)


@pytest.fixture
def provenance_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `provenance ARGS...` in this process: (exit status, stdout, stderr). Seconds faster than a
    subprocess, which pays the imports again; argparse's own exits come back as their status."""
    from provenance.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()  # drop what the test printed before
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: usage errors and --help
            rc = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return rc, out, err

    return run

