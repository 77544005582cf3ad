"""The code layout (docs/decisions.md, "Code layout"): which layer may import which.

    spec/    configs, formats, register map, flit format, serial protocol: standard library only
    hw/      the RTL (Amaranth): spec
    golden/  the numpy model: spec
    sim/     cocotb testbenches and the Verilator runner: spec, hw, golden
    gen/     the tools (CLI, build, DSE, bench, evaluation, board host): everything above

Every import of the installed package is namespaced (``star.hw``, never a bare ``hw``), in the
package, the scripts and the tests. The check parses each file's imports (also those inside
functions), so a lazy import cannot slip past it.
"""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spec", "hw", "golden", "sim", "gen")
# the project layers each package may import, and the third-party packages it may import
MAY_IMPORT = {
    "spec": ({"spec"}, set()),
    "hw": ({"spec", "hw"}, {"amaranth"}),
    "golden": ({"spec", "golden"}, {"numpy"}),
    "sim": ({"spec", "hw", "golden", "sim"}, {"amaranth", "numpy", "cocotb", "cocotb_tools",
                                               "cocotbext", "pytest"}),
    "gen": (set(PACKAGES), None),          # None: any third-party package
}


def _imports(path: Path):
    """(line, absolute dotted module) of every import in *path*, relative ones resolved."""
    package = ["star"] + list(path.relative_to(ROOT).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                yield node.lineno, ".".join(base + ([node.module] if node.module else []))
            else:
                yield node.lineno, node.module


def _files(*folders):
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


@pytest.mark.parametrize("layer", PACKAGES)
def test_each_layer_imports_only_the_layers_below(layer):
    own, third = MAY_IMPORT[layer]
    bad = []
    for path in _files(layer):
        for line, module in _imports(path):
            top = module.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if top == "star":
                sub = module.split(".")[1] if "." in module else ""
                if sub not in own:
                    bad.append(where)
            elif top in sys.stdlib_module_names:
                continue
            elif third is not None and top not in third:
                bad.append(where)
    assert not bad, f"{layer}/ may import star.{{{', '.join(sorted(own))}}}" \
        + (f" and {sorted(third)}" if third else "") + ":\n" + "\n".join(bad)


def test_no_bare_project_imports():
    """``import hw`` would find the repository folder only from the repository root, and
    could collide with another distribution's module; the package is ``star``."""
    bad = [f"{path.relative_to(ROOT)}:{line} imports {module}"
           for path in _files(*PACKAGES, "scripts", "tests")
           for line, module in _imports(path) if module.split(".")[0] in PACKAGES]
    assert not bad, "\n".join(bad)


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker sees lazy (in-function) and relative imports."""
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "x.py").write_text("def f():\n    from ..hw import core\n    import numpy\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = [m for _, m in _imports(spec / "x.py")]
    assert found == ["star.hw", "numpy"]
    with pytest.raises(AssertionError, match="spec/x.py:2 imports star.hw"):
        test_each_layer_imports_only_the_layers_below("spec")


#: rules defined once (their home in parentheses), and the spelled-out forms they replaced: no
#: file but the home may write them again
ONCE = [
    (r"tile\.bit_length\(\) - 1|Bc\.bit_length\(\) - 1", "spec/formats.py"),  # Formats.log2_tile
    (r"SCALE_SHIFT\W[^\n]*\b6[34]\b", None),                # SCALE_SHIFT_MAX (spec/formats.py)
    (r"\"addr\": ADDR_BITS, \"(tag|row)\"", "hw/layouts.py"),  # read/write request layouts
    (r"recip_bits \+ (2|cfg\.head_dim)", "hw/recip.py"),      # recip_latency
    # a stream that is always ready says so (stream.Signature(..., always_ready=True))
    (r"\bq\.ready\.eq\(1\)", None),
    # the causal tile plan (spec/tiling.py: key_limit, tiles_to)
    (r"seq_len - 1, lim|\+ seq_len - q_len\)? if causal|Mux\(causal, qb|>> lb\) \+ 1", None),
]


@pytest.mark.parametrize("pattern, home", ONCE)
def test_each_rule_is_written_once(pattern, home):
    import re
    rx = re.compile(pattern)
    bad = [f"{p.relative_to(ROOT)}:{n}" for p in _files(*PACKAGES)
           if str(p.relative_to(ROOT)) != home
           for n, line in enumerate(p.read_text().splitlines(), 1) if rx.search(line)]
    assert not bad, f"{pattern!r} written again outside {home}: {', '.join(bad)}"
