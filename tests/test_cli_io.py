"""The `star` command as people use it (issue 23): one-line errors for bad output folders, bad
config files and I/O errors, Ctrl-C and a closed stdout without tracebacks, progress lines and
-q, names of overridden configs, FuseSoC cores and file lists that tools accept, no stale
outputs, the completion marker, `star sim -o`."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from star.gen import build
from star.gen.cli import main
from star.spec.config import preset

ROOT = Path(__file__).resolve().parents[1]
STAR = [sys.executable, "-m", "star.gen.cli"]


def star(*args, **kwargs):
    """Run `star` in a child process (the repository's packages first on its path)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([*STAR, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300, **kwargs)


def one_line(err: str) -> str:
    """The stderr of a failed command: exactly one line `star: ...`, no traceback."""
    assert err.startswith("star: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


# ---- output folders -----------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["generate", "-p", "tiny"],
    ["synth", "-p", "tiny", "--top", "star_sads"],
    ["timing", "-p", "tiny", "--top", "star_sads"],
    ["bench", "-p", "tiny", "--seqs", "20", "--k", "2"],
    ["sim", "-p", "tiny", "--tests", "axil_map"],
    ["dse", "-p", "tiny", "--data", "."],
    ["board", "-p", "tiny", "--board", "ulx3s-85f"],
], ids=lambda a: a[0])
def test_output_folder_that_is_a_file(argv, tmp_path, capsys):
    """-o naming a file, or a path under a file: one line naming -o and the path, before any
    work (no progress line came first), nothing created."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    for out, why in ((afile, "not a folder"), (afile / "sub" / "dir", f"{afile} is a file")):
        assert main([*argv, "-o", str(out)]) == 2
        err = one_line(capsys.readouterr().err)
        assert err.startswith(f"star: -o {out}: not a folder") and why in err, err
    assert afile.read_text() == "not a folder\n" and sorted(tmp_path.iterdir()) == [afile]


def test_read_only_output_folder(tmp_path):
    """A folder the command may not write to: one line, exit 2. As root (who writes anywhere)
    the command runs without CAP_DAC_OVERRIDE, so the folder's mode bits hold for it too."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    drop = []
    if os.geteuid() == 0:
        assert shutil.which("setpriv"), "setpriv (util-linux) is needed to test as root"
        drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        for out, why in ((ro, "folder not writable"),
                         (ro / "out", f"cannot create it ({ro} is not writable)")):
            r = subprocess.run([*drop, *STAR, "generate", "-p", "tiny", "--tops", "star_sads",
                                "-o", str(out)], env=env, capture_output=True, text=True,
                               timeout=300)
            assert r.returncode == 2, r.stderr
            assert one_line(r.stderr).startswith(f"star: -o {out}: {why}")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_io_error_mid_run_is_one_line(tmp_path, capsys):
    """An OSError after the checks (here rtl/ is a file): `star: <reason>: <file>`, exit 2."""
    (tmp_path / "rtl").write_text("")
    assert main(["generate", "-p", "tiny", "--tops", "star_sads", "-q", "-o",
                 str(tmp_path)]) == 2
    err = one_line(capsys.readouterr().err)
    assert str(tmp_path / "rtl") in err and not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize("content, why", [
    (None, "cannot read the config file (Is a directory)"),
    (b"\xff\xfe\x00\x01binary", "not a text file (a config file is UTF-8 TOML)")])
def test_config_file_that_is_a_folder_or_binary(content, why, tmp_path, capsys):
    path = tmp_path / "cfg.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    assert main(["show-config", "-c", str(path)]) == 2
    assert one_line(capsys.readouterr().err) == f"star: {path}: {why}"


# ---- interruption, closed pipe --------------------------------------------------------------

@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_during_generate(jobs, tmp_path):
    """SIGINT to the process group of `star generate` (as Ctrl-C in a terminal) while it
    converts: exit 130, `star: interrupted`, no traceback from it or a worker, no worker left,
    no completion marker."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # the default preset: converting star_core takes seconds, so the signal lands mid-conversion
    proc = subprocess.Popen([*STAR, "generate", "-p", "default", "-j", str(jobs), "-o", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            bufsize=0, start_new_session=True, preexec_fn=_default_sigint)
    try:
        first = b""
        while b"converting" not in first:          # the step is announced before it runs
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, f"exited before converting: {first.decode()}"
            first += chunk
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = first.decode()
    err = first + rest.decode()
    assert proc.returncode == 130, err
    lines = err.splitlines()
    assert lines[-1] == "star: interrupted" and "Traceback" not in err, err
    assert all(ln.startswith("star: generate default: ") for ln in lines[:-1]), err
    for _ in range(50):                   # a process killed a moment ago may still be exiting
        if not live_processes(proc.pid):
            break
        time.sleep(0.1)
    assert live_processes(proc.pid) == [], "a worker or a Yosys process survived"
    assert not (out / "manifest.json").exists()


def _default_sigint() -> None:
    """Ctrl-C as in a terminal: a pytest-xdist worker ignores SIGINT, and a child inherits an
    ignored signal (Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def live_processes(group: int) -> list[int]:
    """The processes of a process group that are still running (not zombies waiting for init to
    reap them)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:                                  # gone meanwhile
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def test_closed_stdout_ends_quietly():
    """`star show-config | head -0`: stdout is a pipe nobody reads; no traceback, no
    "Exception ignored" at exit, status 141 (128 + SIGPIPE)."""
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run([*STAR, "show-config", "-p", "tiny"], stdout=w,
                              stderr=subprocess.PIPE, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    finally:
        os.close(w)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr


# ---- progress -------------------------------------------------------------------------------

def test_progress_lines_and_quiet(tmp_path, capsys):
    """One stderr line per step with its wall time; -q: none; stdout the same either way."""
    argv = ["generate", "-p", "tiny", "--tops", "star_sads", "-j", "1", "-o", str(tmp_path)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert re.fullmatch(r"star: generate tiny: converting star_sads \.\.\. \(\d+\.\d s\)",
                        lines[0]), err
    assert lines[1].startswith("star: generate tiny: register map, file lists, FuseSoC core, "
                               "manifest ... (") and len(lines) == 2, err
    assert main([*argv, "-q"]) == 0
    quiet_out, quiet_err = capsys.readouterr()
    assert quiet_err == "" and quiet_out == out and "star: wrote" in out


# ---- names of overridden configs -------------------------------------------------------------

def short_hash(cfg_dict: dict) -> str:
    fields_ = {k: v for k, v in cfg_dict.items() if k != "name"}
    return hashlib.sha256(json.dumps(fields_, sort_keys=True).encode()).hexdigest()[:6]


def shown(capsys, *argv) -> dict:
    assert main(["show-config", *argv]) == 0
    return json.loads(capsys.readouterr().out)["config"]


def test_overridden_config_gets_its_own_name(tmp_path, capsys, monkeypatch):
    """-P away from the preset: name <preset>-<hash>, which names the default folder, the
    FuseSoC core and the manifest; the manifest records the base preset and the overrides."""
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "-p", "tiny", "-P", "k_tile=8", "--tops", "star_sads", "-q"]) == 0
    capsys.readouterr()
    cfg = dict(preset("tiny").to_dict(), k_tile=8)
    name = f"tiny-{short_hash(cfg)}"
    out = tmp_path / "build" / name
    man = json.loads((out / "manifest.json").read_text())
    assert man["config"] == dict(cfg, name=name)
    assert man["base"] == "tiny" and man["overrides"] == {"k_tile": 8}
    core = yaml.safe_load((out / f"star_{name}.core").read_text())
    assert core["name"] == f"::star_{name}:0"
    assert not (tmp_path / "build" / "tiny").exists()
    # the same config twice: the same name; another one: another name
    assert shown(capsys, "-p", "tiny", "-P", "k_tile=8")["name"] == name
    assert shown(capsys, "-p", "tiny", "-P", "k_tile=2")["name"] not in (name, "tiny")
    # an override equal to the preset changes nothing; a name given is kept
    assert shown(capsys, "-p", "tiny", "-P", "k_tile=4")["name"] == "tiny"
    assert shown(capsys, "-p", "tiny", "-P", "k_tile=8", "-P", "name=mine")["name"] == "mine"
    # config files: their stem (cut to fit 32 characters) unless they set a name
    (tmp_path / "my.toml").write_text('preset = "tiny"\nk_tile = 8\n')
    assert shown(capsys, "-c", "my.toml")["name"] == f"my-{short_hash(cfg)}"
    long = tmp_path / ("x" * 30 + ".toml")
    long.write_text('preset = "tiny"\nk_tile = 8\n')
    assert shown(capsys, "-c", str(long))["name"] == "x" * 25 + f"-{short_hash(cfg)}"
    (tmp_path / "same.toml").write_text('preset = "tiny"\n')
    assert shown(capsys, "-c", "same.toml")["name"] == "same"
    (tmp_path / "named.toml").write_text('preset = "tiny"\nk_tile = 8\nname = "fixed"\n')
    assert shown(capsys, "-c", "named.toml", "-P", "lanes=2")["name"] == "fixed"


# ---- FuseSoC core and file lists ------------------------------------------------------------

def check_fusesoc_core(folder: Path) -> dict:
    """The .core of a generate folder (CAPI2, parsed as YAML): every target's toplevel is a
    module defined in the core's files, and those files exist. Returns the parsed core."""
    (path,) = folder.glob("star_*.core")
    text = path.read_text()
    assert text.startswith("CAPI=2:\n")
    core = yaml.safe_load(text)
    files = core["filesets"]["rtl"]["files"]
    sources = "".join((folder / f).read_text() for f in files)
    for name, target in core["targets"].items():
        assert target["filesets"] == ["rtl"]
        assert re.search(rf"^module {re.escape(target['toplevel'])}\(", sources, re.M), \
            f"target {name}: toplevel {target['toplevel']} is defined in none of {files}"
    return core


def test_fusesoc_core_and_file_lists_work_with_verilator_and_icarus(tmp_path):
    """--tops star_sads: the .core's toplevel is star_sads; rtl/filelist.f works with
    Verilator's -F from any folder, files.f with -f (Verilator) and -c (Icarus) from the output
    folder."""
    from star.sim.runner import setup_toolchain_env
    out = tmp_path / "out"
    assert main(["generate", "-p", "tiny", "--tops", "star_sads", "-q", "-o", str(out)]) == 0
    core = check_fusesoc_core(out)
    assert core["targets"] == {"default": {"filesets": ["rtl"], "toplevel": "star_sads"}}
    assert (out / "rtl" / "filelist.f").read_text() == "star_sads.v\n"
    assert (out / "files.f").read_text() == "rtl/star_sads.v\n"
    setup_toolchain_env()
    lint = ["verilator", "--lint-only", "-Wno-fatal", "--top-module", "star_sads"]
    for argv, cwd in ((lint + ["-F", "out/rtl/filelist.f"], tmp_path),
                      (lint + ["-f", "files.f"], out)):
        r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
    assert shutil.which("iverilog"), ("iverilog not found: Icarus Verilog is needed by this "
                                      "test (Debian: apt-get install iverilog; `make install` "
                                      "installs it as root)")
    r = subprocess.run(["iverilog", "-g2005", "-s", "star_sads", "-o", str(tmp_path / "a.vvp"),
                        "-c", "files.f"], cwd=out, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and (tmp_path / "a.vvp").is_file(), r.stderr[-2000:]


# ---- stale outputs, completion marker --------------------------------------------------------

def test_a_rerun_leaves_no_stale_output(tmp_path, capsys):
    """star_core and star_spatial generated, then star_sads alone into the same folder: only
    star_sads remains, in every list; files that are not star's are kept."""
    out = tmp_path / "out"
    (out / "rtl").mkdir(parents=True)
    (out / "rtl" / "mine.v").write_text("// not star's\n")
    (out / "notes.txt").write_text("keep\n")
    assert main(["generate", "-p", "tiny", "--mesh", "1x2", "--tops", "star_sads,star_spatial",
                 "-q", "-o", str(out)]) == 0
    assert check_fusesoc_core(out)["targets"]["default"]["toplevel"] == "star_spatial"
    assert main(["generate", "-p", "tiny", "--tops", "star_sads", "-q", "-o", str(out)]) == 0
    assert sorted(p.name for p in (out / "rtl").iterdir()) == ["filelist.f", "mine.v",
                                                               "star_sads.v"]
    assert (out / "files.f").read_text() == "rtl/star_sads.v\n"
    assert check_fusesoc_core(out)["targets"]["default"]["toplevel"] == "star_sads"
    assert list(json.loads((out / "manifest.json").read_text())["tops"]) == ["star_sads"]
    assert (out / "notes.txt").read_text() == "keep\n"


def test_manifest_is_the_completion_marker(tmp_path, capsys, monkeypatch):
    """manifest.json is written last; a run that stops midway leaves none, and none of the
    previous run's files."""
    out = tmp_path / "out"
    written = []
    real_write = build.write_if_changed

    def record(path, text):
        written.append(Path(path).name)
        return real_write(path, text)
    monkeypatch.setattr(build, "write_if_changed", record)
    assert main(["generate", "-p", "tiny", "--tops", "star_dlzs,star_sads", "-j", "1", "-q",
                 "-o", str(out)]) == 0
    assert written[-1] == "manifest.json" and len(written) == len(set(written)) == 9
    assert (out / "rtl" / "star_dlzs.v").exists()

    def stop(component, name):
        component._MustUse__silence = True
        if name == "star_sads":
            raise KeyboardInterrupt
        return "module star_dlzs();\nendmodule\n"
    monkeypatch.setattr(build, "convert", stop)
    assert main(["generate", "-p", "tiny", "--tops", "star_dlzs,star_sads", "-j", "1", "-q",
                 "-o", str(out)]) == 130
    assert capsys.readouterr().err == "star: interrupted\n"
    assert not (out / "manifest.json").exists() and not list(out.glob("rtl/*.v"))
    assert not list(out.glob("star_*.core")) and not (out / "files.f").exists()


# ---- star sim -o ----------------------------------------------------------------------------

def test_sim_builds_in_the_folder_of_o(tmp_path, capsys, monkeypatch):
    """`star sim -o DIR` builds and runs the model under DIR (absolute, from the cwd); the
    Verilator build and each test are progress steps. (The runner is replaced here: the real
    build and run are tests/test_cli.py::test_sim_runs_the_core_regression.)"""
    import star.hw.verilog
    import star.sim.runner
    from star.sim.runner import SimResult
    calls = []

    def fake_build(text, top, *, build_root, waves):
        calls.append(("build", build_root))

    def fake_run(text, top, module, *, build_root, seed, **kwargs):
        calls.append(("run", build_root))
        d = Path(build_root) / "m"
        return SimResult(d, d / "run", d / "r.xml", d / "sim.log", None, seed, 1, False)

    def stub(component, name):
        component._MustUse__silence = True
        return "module star_core();\nendmodule\n"
    monkeypatch.setattr(star.sim.runner, "build", fake_build)
    monkeypatch.setattr(star.sim.runner, "run", fake_run)
    monkeypatch.setattr(star.hw.verilog, "convert", stub)
    monkeypatch.chdir(tmp_path)
    assert main(["sim", "-p", "tiny", "--tests", "axil_map,reset_mid_job", "--seed", "4",
                 "-o", "simb"]) == 0
    where = (tmp_path / "simb").resolve()
    assert calls == [("build", where), ("run", where), ("run", where)]
    out, err = capsys.readouterr()
    assert f"axil_map passed (seed 4; log {where}/m/sim.log)" in out
    steps = [ln.split(" ... ")[0] for ln in err.splitlines()]
    assert steps == ["star: sim tiny: converting star_core",
                     "star: sim tiny: Verilator build of star_core (cached; minutes when new)",
                     "star: sim tiny: axil_map", "star: sim tiny: reset_mid_job"], err
