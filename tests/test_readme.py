"""README.md's results section is what gen.readme generates from the committed reports."""

from star.gen.readme import BEGIN, END, ROOT, section


def test_readme_results_match_the_reports():
    text = (ROOT / "README.md").read_text()
    assert BEGIN in text and END in text, "README.md lost its generated-results markers"
    current = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert current == "\n" + section(), "README results are stale: run `make readme`"


def test_driver_snippet_uses_the_generated_header():
    """Every upper-case name in the README's C driver snippet is a macro star_regs.h defines."""
    import re

    from star.gen import regmap
    from star.spec.config import preset
    text = (ROOT / "README.md").read_text()
    snippet = text.split("A driver in short", 1)[1].split("```c\n", 1)[1].split("```", 1)[0]
    names = set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", snippet))
    defined = set(re.findall(r"^#define (\w+) ", regmap.c_header(preset("tiny")), re.M))
    assert len(names) >= 15 and names <= defined, sorted(names - defined)


def test_relative_links_resolve():
    """Every relative link in README.md and docs/ names an existing file, and a heading of it
    when it has an #anchor (GitHub's slugs: lower case, punctuation dropped, spaces to -)."""
    import re

    def slugs(path):
        out, code = set(), False
        for line in path.read_text().splitlines():
            code ^= line.startswith("```")
            if not code and line.startswith("#"):
                out.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
        return out

    bad = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if "://" in target:
                continue
            name, _, anchor = target.partition("#")
            path = md.parent / name if name else md
            if not path.exists() or (anchor and path.suffix == ".md"
                                     and anchor not in slugs(path)):
                bad.append(f"{md.relative_to(ROOT)}: {target}")
    assert not bad, bad
