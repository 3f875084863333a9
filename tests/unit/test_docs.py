"""The README and docs/ stay navigable: every relative link points at a file that exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s#]+)(#[^)]*)?\)")


def test_relative_links_resolve():
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target, _ in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_readme_starts_with_the_two_commands_and_stays_short():
    text = (ROOT / "README.md").read_text()
    head = text[: text.index("## ")]
    assert "make demo" in head
    assert "make test" in head
    assert len(text.splitlines()) < 150


def test_no_one_installs_someone_elses_package():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        assert "pip install edge-agent" not in text, page
        assert "pip install 'edge-agent[" not in text, page
