"""Project-wide pytest options.

* ``@pytest.mark.long``: a slow test. Skipped unless pytest gets ``--long``
  (``make test-long``); ``make test`` runs the fast set only.
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
    group.addoption("--seed", type=int, default=DEFAULT_SEED,
                    help=f"seed for randomised tests (default {DEFAULT_SEED})")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "long: slow test, skipped unless pytest is given --long (make test-long)")


def pytest_report_header(config):
    return f"seed: {config.getoption('--seed')}, long tests: " + (
        "on" if config.getoption("--long") else "off (--long to enable)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long"):
        return
    skip_long = pytest.mark.skip(reason="long test: skipped unless --long is given (make test-long)")
    for item in items:
        if item.get_closest_marker("long") is not None:
            item.add_marker(skip_long)


@pytest.fixture
def seed(request):
    value = request.config.getoption("--seed")
    print(f"seed = {value} (rerun with --seed {value})")
    return value
