"""The generated parts of the documentation: option references that cannot drift from the code.

    python -m dlbench.docs            # rewrite the generated blocks of docs/
    python -m dlbench.docs --check    # exit 1 and name the pages that are out of date

Each experiment's page, `docs/experiments/<name>.md`, carries its option reference, made from
the fields of the experiment's `Options` (default, value under `--quick`, range, choices, help);
`docs/commands.md` carries the options of every other command, read from the command line
itself. A generated block sits between two marker lines; the prose around it is written by
hand and left alone. A registered experiment without a page gets one with its block. The
experiments are found through `dlbench.experiments.names()` and `load(name)` only.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

BEGIN = "<!-- BEGIN GENERATED {name}: python -m dlbench.docs writes this block; edit the code, not the block -->"
END = "<!-- END GENERATED {name} -->"
ROOT = Path(__file__).resolve().parent.parent
#: The commands whose reference docs/commands.md carries (the experiments have their own pages).
COMMANDS = ("show", "claims", "report", "compare", "env", "suite")


def _code(v) -> str:
    return f"`{v}`"


def _value(v) -> str:
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return _code(f"{v:g}")
    if isinstance(v, Path):
        return _code(v)
    return _code(v)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _range(meta: dict) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return f"from {lo:g} to {hi:g}"
    if lo is not None:
        return f"at least {lo:g}"
    if hi is not None:
        return f"at most {hi:g}"
    return ""


def _annotation(module, f: dataclasses.Field):
    # the same reading of the annotation the command line makes (dlbench.cli)
    return f.type if not isinstance(f.type, str) else eval(f.type, vars(module))  # noqa: S307


def option_table(module) -> str:
    """The Markdown reference of an experiment's own options, from its `Options` fields."""
    rows = []
    for f in dataclasses.fields(module.Options):
        meta = f.metadata
        typ = _annotation(module, f)
        flag = "--" + f.name.replace("_", "-")
        if typ is bool:
            flag = f"{flag} / --no-{f.name.replace('_', '-')}"
        else:
            flag += " " + (meta.get("metavar") or ("NAME" if meta.get("choices") and typ is str else
                                                   "LIST" if meta.get("choices") else
                                                   "N" if typ in (int, int | None) else
                                                   "X" if typ in (float, float | None) else "TEXT"))
        meaning = [meta.get("help", "")]
        if meta.get("choices"):
            names = ", ".join(_code(c) for c in meta["choices"]())
            meaning.append(f"One of {names}." if typ is str else f"Comma-separated, from {names}.")
        bounds = _range(meta)
        if bounds:
            meaning.append(f"Range: {bounds}.")
        quick = "" if meta.get("quick") is None else _value(meta["quick"])
        rows.append(f"| {_code(flag)} | {_cell(_value(f.default))} | {_cell(quick)} | {_cell(' '.join(meaning))} |")
    head = "| option | default | under `--quick` | meaning |\n| --- | --- | --- | --- |\n"
    return head + "\n".join(rows) + "\n"


def experiment_block(name: str) -> str:
    """What an experiment's page generates: its command line, help, options, figure and suite settings."""
    from dlbench import experiments

    module = experiments.load(name)
    out = [f"`dlbench {name} [OPTIONS]`: {module.HELP}\n\n", option_table(module)]
    plot = getattr(module, "plot", None)
    if callable(plot):
        doc = " ".join((plot.__doc__ or "").strip().split("\n\n")[0].split())
        out.append("\n`--plot FILE` (`.png`, `.svg` or `.pdf`; needs matplotlib) also draws a figure"
                   + (f": {doc}" if doc else ".") + "\n")
    suite = getattr(module, "SUITE_OPTIONS", {})
    if suite:
        out.append("\n`dlbench suite` runs it with " + ", ".join(f"`--{k.replace('_', '-')}` = {_value(v)}"
                                                                  for k, v in suite.items()) + ".\n")
    out.append("\nPlus the options every experiment shares ([commands.md](../commands.md#options-every-experiment-shares)).\n")
    return "".join(out)


def _click_commands() -> dict:
    import typer

    from dlbench import cli

    return typer.main.get_command(cli.app).commands


def _type_metavar(p) -> str:
    desc = p.type_descriptor
    if desc.is_choice:
        return "|".join(map(str, desc.choices))
    base = p.bare_type()
    return {"int": "N", "float": "X", "Path": "PATH", "list[Path]": "PATH"}.get(base, "TEXT")


def command_table(name: str) -> str:
    """The Markdown reference of a command's arguments and options, read from the command line."""
    command = _click_commands()[name]
    rows = []
    for p in command.params:
        if p.param_type_name == "argument":
            rows.append(f"| {_code(p.metavar or p.name.upper())} | | {_cell(getattr(p, 'help', '') or '')} |")
            continue
        names = " / ".join([", ".join(p.opts), *([", ".join(p.secondary_opts)] if p.secondary_opts else [])])
        if not p.is_flag:
            names += f" {p.metavar or _type_metavar(p)}"
        default = "" if p.required else ("off" if p.is_flag and p.default is False else
                                         "on" if p.is_flag and p.default is True else
                                         "" if p.default is None or p.default == [] else _value(p.default))
        rows.append(f"| {_cell(_code(names))} | {_cell(default)} | {_cell(p.help or '')} |")
    head = "| argument or option | default | meaning |\n| --- | --- | --- |\n"
    return f"`dlbench {name}`: {_cell(command.help or '')}\n\n" + head + "\n".join(rows) + "\n"


def shared_table() -> str:
    """The options every experiment command (and `suite`) shares: those of `dlbench suite`."""
    return command_table("suite").split("\n\n", 1)[1]


def experiments_table() -> str:
    from dlbench import experiments

    rows = [f"| [`dlbench {n}`](experiments/{n}.md) | {_cell(experiments.load(n).HELP)} |" for n in experiments.names()]
    return "| command | what it asks |\n| --- | --- |\n" + "\n".join(rows) + "\n"


def blocks() -> dict[Path, dict[str, str]]:
    """Every generated block, by page and block name."""
    from dlbench import experiments

    pages: dict[Path, dict[str, str]] = {
        Path("docs/commands.md"): {"experiments": experiments_table(), "shared-options": shared_table(),
                                   **{f"command-{c}": command_table(c) for c in COMMANDS}},
    }
    pages[Path("docs/compare.md")] = {"command-compare": command_table("compare")}
    for name in experiments.names():
        pages[Path(f"docs/experiments/{name}.md")] = {"options": experiment_block(name)}
    return pages


def _new_page(path: Path, names: list[str]) -> str:
    title = path.stem
    body = "".join(f"\n{BEGIN.format(name=n)}\n{END.format(name=n)}\n" for n in names)
    return f"# `dlbench {title}`\n{body}"


def render_page(text: str, generated: dict[str, str], path: Path) -> str:
    """`text` with each of its generated blocks replaced by the current content."""
    for name, content in generated.items():
        begin, end = BEGIN.format(name=name), END.format(name=name)
        if begin not in text or end not in text:
            raise ValueError(f"{path}: the markers of the generated block {name!r} are missing")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{content}{end}{tail}"
    return text


def update(root: Path = ROOT, *, check: bool = False) -> list[Path]:
    """Rewrite every generated block under `root` (or, with `check`, only list the stale pages)."""
    stale = []
    for rel, generated in blocks().items():
        path = root / rel
        text = path.read_text() if path.exists() else _new_page(path, list(generated))
        new = render_page(text, generated, rel)
        if not path.exists() or new != path.read_text():
            stale.append(rel)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(new)
    return stale


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print("usage: python -m dlbench.docs [--check]", file=sys.stderr)
        return 2
    stale = update(check=check)
    for rel in stale:
        print(f"{'out of date' if check else 'wrote'}: {rel}")
    if check and stale:
        print("run: python -m dlbench.docs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
