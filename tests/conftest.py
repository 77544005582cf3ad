"""Project-wide pytest options.

* ``@pytest.mark.long``: a slow test. Skipped unless pytest gets ``--long``
  (``make test-long``); ``make test`` runs the fast set only.
* ``@pytest.mark.regress``: part of the robustness sweep (tests/test_regress.py). Skipped
  unless pytest gets ``--regress`` (``make regress``).
* ``--seed N`` and the ``seed`` fixture: the seed for randomised tests (default 1, so
  runs are reproducible). The fixture prints it, so a failing test's captured output
  shows the seed to rerun with.
"""

import pytest

DEFAULT_SEED = 1


def pytest_addoption(parser):
    group = parser.getgroup("star")
    group.addoption("--long", action="store_true", default=False,
                    help="also run tests marked @pytest.mark.long (slow)")
    group.addoption("--regress", action="store_true", default=False,
                    help="also run tests marked @pytest.mark.regress (make regress)")
    group.addoption("--regress-configs", type=int, default=200, metavar="N",
                    help="random valid configs in tests/test_regress.py (default 200)")
    group.addoption("--regress-invalid", type=int, default=60, metavar="N",
                    help="random invalid inputs in tests/test_regress.py (default 60)")
    group.addoption("--record-hashes", action="store_true", default=False,
                    help="tests/test_lint.py: record the Verilog hashes instead of checking them "
                         "(make verilog-hashes)")
    group.addoption("--seed", type=int, default=DEFAULT_SEED,
                    help=f"seed for randomised tests (default {DEFAULT_SEED})")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "long: slow test, skipped unless pytest is given --long (make test-long)")
    config.addinivalue_line(
        "markers", "regress: robustness sweep, skipped unless pytest is given --regress "
                   "(make regress)")


def pytest_report_header(config):
    return f"seed: {config.getoption('--seed')}, long tests: " + (
        "on" if config.getoption("--long") else "off (--long to enable)")


def pytest_collection_modifyitems(config, items):
    skips = {"long": pytest.mark.skip(reason="long test: skipped unless --long is given "
                                             "(make test-long)"),
             "regress": pytest.mark.skip(reason="regress test: skipped unless --regress is given "
                                                "(make regress)")}
    for item in items:
        for name, skip in skips.items():
            if not config.getoption(f"--{name}") and item.get_closest_marker(name) is not None:
                item.add_marker(skip)


@pytest.fixture
def seed(request):
    value = request.config.getoption("--seed")
    print(f"seed = {value} (rerun with --seed {value})")
    return value
