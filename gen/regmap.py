"""Render the core's register map (``spec/regmap.py``) as Markdown, a C header and a Python module.

All three come from the same description, so a register added there appears everywhere.
"""

from __future__ import annotations

from star.spec.regmap import ErrorCode, registers

__all__ = ["markdown", "c_header", "python_module", "as_dict"]


def as_dict(cfg) -> dict:
    """{name: {offset, access, reset, doc, fields: {name: (lsb, width)}}} plus ``ERROR_CODES``."""
    regs = {r.name: {"offset": r.offset, "access": r.access, "reset": r.reset, "doc": r.doc,
                     "fields": {f[0]: (f[1], f[2]) for f in r.fields}}
            for r in registers(cfg)}
    return {"registers": regs, "error_codes": {e.name: e.value for e in ErrorCode}}


def markdown(cfg) -> str:
    lines = [f"# Register map of `star_core` ({cfg.name})", "",
             "32-bit registers on the AXI4-Lite slave (byte offsets). Generated from "
             "`spec/regmap.py`; do not edit.", "",
             "| offset | name | access | reset | description |", "|---|---|---|---|---|"]
    for r in registers(cfg):
        doc = r.doc
        if r.fields:
            doc += "; " + "; ".join(
                f"[{f[1] + f[2] - 1}:{f[1]}] {f[0]}: {f[3]}" if f[2] > 1 else f"[{f[1]}] {f[0]}: {f[3]}"
                for f in r.fields)
        lines.append(f"| 0x{r.offset:02X} | {r.name} | {r.access} | 0x{r.reset:X} | {doc} |")
    lines += ["", "## Error codes", "", "| code | name |", "|---|---|"]
    lines += [f"| {e.value} | {e.name} |" for e in ErrorCode]
    return "\n".join(lines) + "\n"


def c_header(cfg) -> str:
    guard = f"STAR_REGS_{cfg.name.upper().replace('-', '_')}_H"
    lines = [f"/* Register map of star_core ({cfg.name}). Generated from spec/regmap.py; do not edit. */",
             f"#ifndef {guard}", f"#define {guard}", ""]
    for r in registers(cfg):
        lines.append(f"#define STAR_{r.name}_OFFSET 0x{r.offset:02X}u  /* {r.access}: {r.doc} */")
        if r.access == "ro" and r.reset:
            lines.append(f"#define STAR_{r.name}_VALUE 0x{r.reset:X}u")
        for name, lsb, _, _ in r.fields:
            lines.append(f"#define STAR_{r.name}_{name}_SHIFT {lsb}u")
            lines.append(f"#define STAR_{r.name}_{name}_MASK 0x{r.mask(name):X}u")
    lines.append("")
    lines += [f"#define STAR_ERROR_{e.name} {e.value}u" for e in ErrorCode]
    lines += ["", f"#endif /* {guard} */"]
    return "\n".join(lines) + "\n"


def python_module(cfg) -> str:
    import pprint
    return (f'"""Register map of star_core ({cfg.name}). Generated from spec/regmap.py; do not edit."""\n\n'
            f"REGMAP = {pprint.pformat(as_dict(cfg), width=100, sort_dicts=False)}\n")
