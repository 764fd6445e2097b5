"""Session set-up shared by the test tiers."""

import pytest
from _pytest.mark.expression import Expression

#: markers of the tests that run YoWASP tools
YOWASP_MARKS = ("fpga", "lint", "formal")


def _may_run_yowasp(config):
    """Whether the ``-m`` expression lets tests marked with one of :data:`YOWASP_MARKS` run."""
    markexpr = config.getoption("markexpr") or ""
    if not markexpr:
        return True
    return Expression.compile(markexpr).evaluate(lambda name, **kwargs: name in YOWASP_MARKS)


def pytest_configure(config):
    # YoWASP tools compile their WebAssembly on first use (~1-2 minutes cold, ~3 s warm for
    # all five). When fpga tests may run, do it once here, on the controller only, before
    # xdist workers start: otherwise every worker compiles at the same time. The default
    # (fast) tier runs no YoWASP tool and skips this.
    if not hasattr(config, "workerinput") and _may_run_yowasp(config):
        from accelgen.fpga.flow import warm_cache
        warm_cache()


@pytest.fixture(scope="session")
def shared_build_root(tmp_path_factory):
    """One simulation build root for the whole session, shared by the xdist workers (their
    base temp directories have a common parent): tests that simulate the same config reuse
    one build (the runner locks a build directory while it builds)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if base.name.startswith("popen-gw") else base) / "shared-sim"
    root.mkdir(parents=True, exist_ok=True)
    return root
