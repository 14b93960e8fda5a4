"""provenance.timing: exclusive stage times while asked for, the original functions afterwards."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from provenance import timing
from provenance.timing import stages


class Base:
    def work(self) -> int:
        time.sleep(0.02)
        return 1

    @staticmethod
    def helper() -> int:
        return 2


class Child(Base):
    pass


def outer() -> int:
    time.sleep(0.03)
    return inner() + 1


def inner() -> int:
    time.sleep(0.05)
    return 1


def test_nested_stages_are_exclusive_and_originals_come_back():
    before = (outer, inner, Child.__dict__.get("work"), Base.helper)
    with stages({"outer": [f"{__name__}:outer"], "inner": [f"{__name__}:inner"],
                 "work": [f"{__name__}:Child.work"], "helper": [f"{__name__}:Base.helper"]}) as t:
        assert globals()["outer"]() == 2 and Child().work() == 1 and Base.helper() == 2
    assert t.calls == {"outer": 1, "inner": 1, "work": 1, "helper": 1}
    assert 0.03 <= t.seconds["outer"] < 0.05 + 0.03 and t.seconds["inner"] >= 0.05
    assert sum(t.seconds.values()) <= t.wall and t.missing == []
    assert (globals()["outer"], globals()["inner"], Child.__dict__.get("work"), Base.helper) == before


def test_other_threads_count_as_background():
    with stages({"inner": [f"{__name__}:inner"]}) as t:
        th = threading.Thread(target=lambda: globals()["inner"]())
        th.start()
        th.join()
    assert t.seconds == {} and t.background["inner"] >= 0.05


def test_missing_targets_are_listed_and_a_malformed_one_is_refused():
    with stages({"x": [f"{__name__}:nothing_here", "no_such_module_xyz:f"]}) as t:
        pass
    assert t.missing == [f"{__name__}:nothing_here"] and t.unused == ["no_such_module_xyz:f"]
    bad = r"'target' parameter of stages must look like 'package.module:function'. Got 'json' instead"
    with pytest.raises(ValueError, match=bad), stages({"x": ["json"]}):
        pass
    assert timing.StageTimes().wall == 0.0


def test_a_module_imported_inside_the_block_is_timed_and_nothing_is_imported_to_find_targets(tmp_path, monkeypatch):
    (tmp_path / "lazy_stage_mod.py").write_text("import time\n\ndef f():\n    time.sleep(0.02)\n    return 5\n")
    (tmp_path / "caller_stage_mod.py").write_text("from lazy_stage_mod import f\n\ndef g():\n    return f()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with stages({"f": ["caller_stage_mod:f"], "never": ["never_imported_stage_mod:h"]}, imports="imports") as t:
        assert "caller_stage_mod" not in sys.modules
        import caller_stage_mod

        assert caller_stage_mod.g() == 5
    assert t.calls["f"] == 1 and t.seconds["f"] >= 0.02 and t.calls["imports"] >= 2
    assert t.missing == [] and t.unused == ["never_imported_stage_mod:h"] and "never_imported_stage_mod" not in sys.modules
    assert caller_stage_mod.f is sys.modules["lazy_stage_mod"].f  # the original again
    for name in ("caller_stage_mod", "lazy_stage_mod"):
        sys.modules.pop(name)
