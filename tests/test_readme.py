"""README.md's results section is what gen.readme generates from the committed reports."""

from gen.readme import BEGIN, END, ROOT, section


def test_readme_results_match_the_reports():
    text = (ROOT / "README.md").read_text()
    assert BEGIN in text and END in text, "README.md lost its generated-results markers"
    current = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert current == "\n" + section(), "README results are stale: run `make readme`"
