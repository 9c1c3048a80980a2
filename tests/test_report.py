"""`dlbench report`: one self-contained page per set of runs (structure, not looks)."""

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

import toy_experiment
from dlbench import cli, experiments
from dlbench import report as report_module
from dlbench.results import read_results
from dlbench.runner import make_options, run_many

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source", "area", "base", "embed", "track"}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "toy.parquet"
    run_many([(toy_experiment, make_options(toy_experiment, True))], quick=True, seeds=6, out=path)
    return path


class Page(HTMLParser):
    """Tags, ids, attributes and nesting of an HTML page, checked as it is read."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.ids, self.attrs, self.errors = [], [], [], [], []
        self.sections = []  # (section id, number of <svg> inside)
        self.styles = []  # the text of every <style>

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v or "") for k, v in attrs)
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "section":
            self.sections.append([a.get("id"), 0])
        if tag == "svg" and self.sections:
            self.sections[-1][1] += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v or "") for k, v in attrs)
        self.ids.extend(v for k, v in attrs if k == "id")

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "style":
            self.styles.append(data)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert not page.errors, page.errors[:5]
    assert page.stack == [], page.stack
    return page


def assert_self_contained(text: str, page: Page):
    """Nothing is fetched and nothing runs: no script, no external reference of any kind."""
    assert "script" not in page.tags and "<script" not in text.lower()
    assert not {"link", "img", "iframe", "object", "embed", "audio", "video", "source"} & set(page.tags)
    for tag, key, value in page.attrs:
        assert not key.startswith("on"), f"<{tag} {key}> is an event handler"
        if key in ("href", "xlink:href", "src", "srcset", "action", "data"):
            assert value.startswith("#"), f"<{tag} {key}={value!r}> points outside the page"
    for url in re.findall(r"url\(([^)]*)\)", text):
        assert url.strip("'\"").startswith("#"), url
    assert "@import" not in text
    # no address anywhere a browser would look: attributes (namespace URLs included) and styles
    assert not [v for _, _, v in page.attrs if "://" in v]
    assert not [s for s in page.styles if "://" in s]


def test_page_has_every_claim_check_and_an_inline_figure(toy_run, tmp_path):
    out = tmp_path / "report.html"
    r = runner.invoke(cli.app, ["report", str(toy_run), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert f"report written to {out}" in r.stderr
    text = out.read_text()
    page = parse(text)
    assert_self_contained(text, page)
    rows = read_results(toy_run).rows
    for cid in set(rows.loc[rows["kind"].isin(["claim", "check"]), "metric"]):
        assert f"toy-{cid}" in page.ids and f">{cid}<" in text
    toy = dict(page.sections)["toy"]
    assert toy >= 1  # the toy has no plot of its own: the figure is drawn from its rows
    assert len(page.ids) == len(set(page.ids)), "an id is used twice (two figures would share a definition)"
    claim = rows[rows["kind"] == "claim"].iloc[0]
    for word in (claim["verdict"], claim["control"], claim["sensitivity"]):
        assert word in text


def test_every_experiment_of_a_suite_gets_its_claims_and_a_figure(tmp_path):
    """The real suite at its quick size: every claim in the page, at least one figure per experiment."""
    out = tmp_path / "suite.parquet"
    r = runner.invoke(cli.app, ["suite", "--quick", "-q", "--out", str(out)])
    assert r.exit_code == 0, r.output
    html = tmp_path / "report.html"
    r = runner.invoke(cli.app, ["report", str(out), "-o", str(html)])
    assert r.exit_code == 0, r.output
    text = html.read_text()
    page = parse(text)
    assert_self_contained(text, page)
    rows = read_results(out).rows
    sections = dict(page.sections)
    for exp in experiments.names():
        assert sections.get(exp, 0) >= 1, f"{exp} has no figure"
        for cid in rows.loc[(rows["experiment"] == exp) & (rows["kind"] == "claim"), "metric"]:
            assert f"{exp}-{cid}" in page.ids
    assert "could not be drawn" not in text


def test_without_matplotlib_the_page_says_so_and_keeps_the_tables(toy_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(report_module, "have_matplotlib", lambda: False)
    out = tmp_path / "report.html"
    r = runner.invoke(cli.app, ["report", str(toy_run), "-o", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    page = parse(text)
    assert text.count("Figures need matplotlib") == 1 and "svg" not in page.tags
    assert "toy-T1" in page.ids and "toy-T2" in page.ids
    assert "dlbench: note: Figures need matplotlib" in r.stderr


def test_markdown_report_with_its_figures_beside_it(toy_run, tmp_path):
    out = tmp_path / "notes" / "report.md"
    r = runner.invoke(cli.app, ["report", str(toy_run), "-o", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "| T1 |" in text and "| T2 |" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all(not link.startswith(("/", "http")) for link in links)
    for link in links:
        svg = (out.parent / link).read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert (out.parent / "report-figures").is_dir()


def test_several_files_each_get_their_own_sections(toy_run, tmp_path):
    out = tmp_path / "two.html"
    r = runner.invoke(cli.app, ["report", str(toy_run), str(toy_run), "-o", str(out), "--no-figures"])
    assert r.exit_code == 0, r.output
    page = parse(out.read_text())
    assert {"toy", "toy-2", "toy-T1", "toy-2-T1"} <= set(page.ids)


def test_a_schema_1_file_reports_every_claim(tmp_path):
    baseline = ROOT / "results" / "baseline.parquet"
    res = read_results(baseline)
    out = tmp_path / "baseline.html"
    r = runner.invoke(cli.app, ["report", str(baseline), "-o", str(out), "--no-figures"])
    assert r.exit_code == 0, r.output
    page = parse(out.read_text())
    claims = res.rows[res.rows["kind"] == "claim"]
    for exp, cid in zip(claims["experiment"], claims["metric"]):
        assert f"{exp}-{cid}" in page.ids


@pytest.mark.parametrize("args, fragment", [
    (["-o", "report.pdf"], "must end in .html or .md"),
    (["-o", "exists.html"], "--force"),
    (["--out", "/proc/x.html"], "not writable"),
])
def test_bad_output_is_one_line_and_exit_2(toy_run, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exists.html").write_text("mine")
    r = runner.invoke(cli.app, ["report", str(toy_run), *args])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlbench: error:") and fragment in lines[0]
    assert (tmp_path / "exists.html").read_text() == "mine"


def test_a_missing_file_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(cli.app, ["report", "nope.parquet"])
    assert r.exit_code == 2 and "no such file" in r.output
    assert not (tmp_path / "report.html").exists()


def test_inline_svg_prefixes_ids_and_drops_namespace_urls():
    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg" '
           'xmlns:xlink="http://www.w3.org/1999/xlink" width="460pt" height="345pt" viewBox="0 0 460 345">'
           '<metadata><rdf:RDF xmlns:dc="http://purl.org/dc/elements/1.1/"/></metadata>'
           '<defs><clipPath id="p1"><rect/></clipPath><path id="m2" d="M0 0"/></defs>'
           '<g clip-path="url(#p1)"><use xlink:href="#m2"/></g></svg>')
    out = report_module.inline_svg(svg, "x-", "a figure")
    assert out.startswith("<svg") and "http" not in out and "metadata" not in out
    assert 'id="x-p1"' in out and "url(#x-p1)" in out and 'xlink:href="#x-m2"' in out
    assert 'style="max-width: 460pt"' in out and 'width="460pt"' not in out and 'aria-label="a figure"' in out


def test_the_catalogue_says_what_each_claim_measures(toy_run, tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "MODULES", {**experiments.MODULES, "toy": "toy_experiment"})
    out = tmp_path / "report.html"
    r = runner.invoke(cli.app, ["report", str(toy_run), "-o", str(out), "--no-figures"])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    parse(text)
    spec = toy_experiment.CLAIMS["T1"]
    assert "What each claim measures" in text and toy_experiment.HELP in text
    for fragment in (spec.measures, spec.control, spec.threshold, "factor in {1, 2}"):
        assert fragment in text
