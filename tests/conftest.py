"""Session set-up shared by the test tiers."""


def pytest_configure(config):
    # YoWASP tools compile their WebAssembly on first use (~1-2 minutes cold, ~3 s warm for
    # all five). Do it once here, on the controller only, before xdist workers start:
    # otherwise every worker compiles at the same time.
    if not hasattr(config, "workerinput"):
        from accelgen.fpga.flow import warm_cache
        warm_cache()
