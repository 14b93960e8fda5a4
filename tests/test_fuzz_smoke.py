"""A short fuzzing run of every reader (fuzz/README.md): no crash, hang or memory over budget.

One run, shared by the tests below: 2 workers, a fixed seed and a fixed number of inputs per target, so
the same inputs are tried on every push. The harness's own canaries (a reader that raises IndexError,
one that sleeps, one that holds 400 MiB, one that segfaults) run alongside, so a harness that stopped
noticing would fail here instead of passing quietly.
"""

from __future__ import annotations

import pytest

from fuzz import real_files
from fuzz.runner import Options, Summary, run
from fuzz.targets import CANARIES, TARGETS
from fuzz.worker import CORPUS
from tests.real_models import require

SMOKE_SEED = 20240611
SMOKE_INPUTS = 150  # per target: about 40 s on 2 busy cores, seeds already built


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Summary:
    for path in real_files.ALL:
        require(path)
    return run(Options(list(TARGETS) + list(CANARIES), inputs=SMOKE_INPUTS, workers=2, seed=SMOKE_SEED,
                       timeout=15.0, findings=tmp_path_factory.mktemp("findings"), confirm=False, progress=0))


def test_no_reader_crashes_hangs_or_goes_over_budget(smoke: Summary) -> None:
    found = [f"{f.target} {f.kind} {f.type} at {f.where}: {f.message} ({f.path})" for f in smoke.findings
             if f.target in TARGETS]
    assert found == []
    assert smoke.problems == []


def test_every_reader_got_every_input_and_read_some_of_them(smoke: Summary) -> None:
    """Each target ran its inputs; some were read whole and some refused (the inputs reached the reader)."""
    counts = {name: (s.inputs, s.inputs > s.refused > 0) for name, s in smoke.stats.items() if name in TARGETS}
    assert counts == {name: (SMOKE_INPUTS, True) for name in TARGETS}


def test_the_regression_corpus_was_replayed(smoke: Summary) -> None:
    assert {name for name, s in smoke.stats.items() if s.corpus} == {
        name for name in TARGETS if any((CORPUS / name).glob("*"))}


def test_the_harness_notices_each_kind_of_failure(smoke: Summary) -> None:
    found = sorted((f.target, f.kind, f.type, f.where.split(" in ")[-1]) for f in smoke.findings if f.target in CANARIES)
    assert found == [("canary_crash", "crash", "IndexError", "_crash"),
                     ("canary_die", "crash", "WorkerDied(signal 11)", "_die"),
                     ("canary_hang", "hang", "Timeout", "_hang"),
                     ("canary_memory", "over-budget", "ok", "(no exception)")], \
        {name: s for name, s in smoke.stats.items() if name in CANARIES}
