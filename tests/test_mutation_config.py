"""The mutation-testing setup is consistent: every deciding module is mutated, its tests are the ones
that pin it, and every entry of the equivalents file parses, names a function in scope and gives a reason.
(The mutation run itself takes tens of minutes: tests/mutation/run.py, in its own workflow.)"""

import importlib.util
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_module():
    spec = importlib.util.spec_from_file_location("mutation_run", ROOT / "tests" / "mutation" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks its module up there
    spec.loader.exec_module(mod)
    return mod


def test_every_deciding_module_is_mutated_with_the_tests_that_pin_it():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mutmut = config["tool"]["mutmut"]
    run = _run_module()
    assert sorted(mutmut["only_mutate"]) == sorted(path for path, _ in run.MODULES.values())
    for test in ("tests/test_decisions.py", "tests/test_compare_decisions.py", "tests/test_stats_oracle.py",
                 "tests/test_protocol.py"):
        assert test in mutmut["pytest_add_cli_args_test_selection"] and (ROOT / test).exists()
    assert config["project"]["optional-dependencies"]["mutation"] == ["mutmut==3.8.1"]


def test_every_equivalent_mutant_names_a_function_in_scope_and_a_reason():
    run = _run_module()
    entries = run.load_equivalents()
    assert entries
    scope = {run.function_name(name + "__mutmut_1") for m in run.MODULES for name in run.in_scope(m)}
    for e in entries:
        assert e.function in scope, f"equivalent.txt:{e.line}: {e.function} is not a mutated function"
        assert e.minus or e.plus, f"equivalent.txt:{e.line}: no changed line"
        assert len(e.reason.split()) >= 4, f"equivalent.txt:{e.line}: a reason in a few words at least"
    keys = [(e.function, e.minus, e.plus) for e in entries]
    assert len(keys) == len(set(keys)), "an entry is listed twice"
