"""The docs cannot drift from the code: docs/configuration.md names every DE_* setting the code
reads and no other, the simulator's DE_SIM_* settings are in docs/api.md's simulator section,
and the README's links lead to files and headings that exist (mkdocs checks the docs' own)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import de_pipeline
from de_pipeline.accounts import KEY_VARIABLE_PREFIX

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION_PAGE = ROOT / "docs" / "configuration.md"  # every DE_* setting but the simulator's
SIMULATOR_PAGE = ROOT / "docs" / "api.md"  # §9, the embedded simulator: every DE_SIM_* setting
SIMULATOR_PREFIX = "DE_SIM_"
# a setting's name; the code reads each as a string literal ("DE_TIMEZONE"), never built
SETTING = r"DE_[A-Z0-9_]*[A-Z0-9]"


def settings_read_by_the_code() -> set[str]:
    """Every DE_* name that the package's source holds as a whole string literal."""
    literal = re.compile(rf"""["']({SETTING})["']""")
    sources = Path(de_pipeline.__file__).parent.rglob("*.py")
    return {name for source in sources for name in literal.findall(source.read_text())}


def settings_named_on(page: Path) -> set[str]:
    """Every DE_* name the page mentions, in code or prose, except the accounts' key variables
    (DE_API_KEY_<NAME>, named by the providers file, not by the code)."""
    names = set(re.findall(rf"\b{SETTING}\b", page.read_text()))
    return {name for name in names if not name.startswith(KEY_VARIABLE_PREFIX)}


def documented_in_backticks(page: Path) -> set[str]:
    return set(re.findall(rf"`({SETTING})", page.read_text()))


def test_the_source_scan_finds_the_settings():
    found = settings_read_by_the_code()
    # one of each kind: the API's, the warehouse's, the CLI's own, the simulator's
    assert {"DE_API_BASE_URL", "DE_DUCKDB_PATH", "DE_RUN_HISTORY", "DE_DEBUG", "DE_SIM_SEED"} <= found, found
    assert not {name for name in found if name.endswith("_")}, "a prefix is not a setting"


def test_the_configuration_page_documents_every_setting_the_code_reads():
    expected = {name for name in settings_read_by_the_code() if not name.startswith(SIMULATOR_PREFIX)}
    missing = sorted(expected - documented_in_backticks(CONFIGURATION_PAGE))
    assert not missing, f"read by de_pipeline/ but not documented in {CONFIGURATION_PAGE.name}: {missing}"


def test_the_configuration_page_names_no_setting_the_code_does_not_read():
    unknown = sorted(settings_named_on(CONFIGURATION_PAGE) - settings_read_by_the_code())
    assert not unknown, f"{CONFIGURATION_PAGE.name} names settings that de_pipeline/ never reads: {unknown}"


def test_the_simulator_settings_live_on_the_simulator_page_only():
    simulator = {name for name in settings_read_by_the_code() if name.startswith(SIMULATOR_PREFIX)}
    assert simulator, "the scan found no DE_SIM_* setting"
    rows = set(re.findall(rf"^\| `({SIMULATOR_PREFIX}[A-Z0-9_]*[A-Z0-9])` \|", SIMULATOR_PAGE.read_text(), re.M))
    assert not sorted(simulator - rows), f"DE_SIM_* settings without a row in {SIMULATOR_PAGE.name} §9"
    unknown = {name for name in settings_named_on(SIMULATOR_PAGE) if name.startswith(SIMULATOR_PREFIX)} - simulator
    assert not unknown, f"{SIMULATOR_PAGE.name} names simulator settings the code never reads: {sorted(unknown)}"
    on_configuration = {n for n in settings_named_on(CONFIGURATION_PAGE) if n.startswith(SIMULATOR_PREFIX)}
    assert not on_configuration, f"kept in {SIMULATOR_PAGE.name} §9 alone, not {CONFIGURATION_PAGE.name}"


def heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (what the README's links point at)."""
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def readme_links() -> list[str]:
    links = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text())
    return [link for link in links if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("link", readme_links())
def test_the_readmes_link_leads_somewhere(link):
    path, _, anchor = link.partition("#")
    target = ROOT / path if path else ROOT / "README.md"
    assert target.exists(), f"README.md links to {path}, which does not exist"
    if anchor:
        assert anchor in heading_anchors(target), f"README.md links to #{anchor}, not a heading of {target.name}"


def test_the_readme_links_to_every_page_of_the_docs():
    pages = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")} - {"docs/index.md"}
    linked = {link.partition("#")[0] for link in readme_links()}
    assert not sorted(pages - linked), "pages the README does not lead to"
