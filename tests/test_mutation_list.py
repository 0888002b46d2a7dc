"""tools/mutation_equivalent/<module>.toml stays honest without running mutmut: every entry has a reason and a kind,
names one mutant once, and names a function that still exists (a renamed or removed function leaves its
justifications stale; tools/mutation.py report then finds the rest, those whose mutant changed)."""

import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import mutation  # noqa: E402  (tools/mutation.py)

LISTED = [m for _, m in mutation._listed()]


def _function(name):
    """``minicnn.graph.xǁGraphǁadd__mutmut_57`` -> (module minicnn.graph, ("Graph", "add"))."""
    dotted, _, number = name.rpartition("__mutmut_")
    assert number.isdigit(), f"{name}: not a mutmut 3 mutant name"
    module_name, _, mangled = dotted.rpartition(".")
    assert mangled.startswith("x"), f"{name}: not a mutmut 3 mutant name"
    parts = mangled[1:].split("ǁ")
    return importlib.import_module(module_name), ([parts[1], parts[2]] if len(parts) == 3 else [parts[0][1:]])


def test_every_justification_has_a_reason_and_a_kind():
    assert mutation._equivalents().keys() == {m["name"] for m in LISTED}
    names = [m["name"] for m in LISTED]
    assert len(names) == len(set(names)), "a mutant is listed twice"
    for m in LISTED:
        assert m.get("kind", "equivalent") in mutation.KINDS and len(m["reason"]) > 20, m


def test_every_module_has_its_file_and_every_entry_is_in_its_module_file():
    assert {path.stem for path in mutation.EQUIVALENT.glob("*.toml")} == set(mutation.MODULES)
    for module, m in mutation._listed():
        assert mutation._module_of(m["name"]) == module, f"{m['name']} is listed in {module}.toml"


def test_every_justified_mutant_is_in_a_mutated_module_and_its_function_exists():
    for m in LISTED:
        assert mutation._module_of(m["name"]) in mutation.MODULES, m["name"]
        module, path = _function(m["name"])
        owner = module
        for attribute in path:
            assert hasattr(owner, attribute), f"{m['name']}: {module.__name__} has no {'.'.join(path)} any more"
            owner = getattr(owner, attribute)


def test_recorded_verdicts_go_back_where_mutmut_reads_them(tmp_path, monkeypatch):
    """``report --write`` records each mutant's verdict and its function's hash; a run in a fresh workdir writes
    them back as mutmut's ``.meta`` files, and leaves alone a file that workdir already has results for."""
    monkeypatch.setattr(mutation, "RESULTS", tmp_path / "results")
    first = tmp_path / "first"
    meta = first / "optim" / "mutants" / "minicnn" / "optim.py.meta"
    meta.parent.mkdir(parents=True)
    verdicts = {"minicnn.optim.x_f__mutmut_1": 1, "minicnn.optim.x_f__mutmut_2": 0, "minicnn.optim.x_f__mutmut_3": None}
    meta.write_text(json.dumps({"exit_code_by_key": verdicts, "hash_by_function_name": {"x_f": "abc"},
                                "type_check_error_by_key": {}, "durations_by_key": {"minicnn.optim.x_f__mutmut_1": 0.5},
                                "estimated_durations_by_key": {}}), encoding="utf-8")
    (first / "optim" / "measured.json").write_text(json.dumps({"commit": "0" * 40, "date": "2026-12-02T00:00:00Z"}))
    assert mutation.save_verdicts("optim", first) == 3
    record = json.loads((tmp_path / "results" / "optim.json").read_text(encoding="utf-8"))
    assert record["commit"] == "0" * 40 and record["files"]["minicnn/optim.py"]["exit_code_by_key"] == verdicts

    fresh = tmp_path / "fresh" / "optim"
    assert mutation.restore_verdicts("optim", fresh) == 2  # the two mutants with a verdict
    restored = json.loads((fresh / "mutants" / "minicnn" / "optim.py.meta").read_text(encoding="utf-8"))
    assert restored["exit_code_by_key"] == verdicts and restored["hash_by_function_name"] == {"x_f": "abc"}
    assert mutation.restore_verdicts("optim", fresh) == 0  # results there now: nothing overwritten


def test_a_first_pass_hands_on_its_kills_only_where_the_function_is_the_same(tmp_path):
    """``run --first``: a mutant that the chosen test files kill is killed in the module's results; a survivor there,
    a mutant the module's run already judged, or one of a function whose source differs keeps its own verdict."""
    def meta(folder, codes, hashes):
        path = folder / "mutants" / "minicnn" / "optim.py.meta"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"exit_code_by_key": codes, "hash_by_function_name": hashes, "type_check_error_by_key": {},
                                    "durations_by_key": {}, "estimated_durations_by_key": {}}), encoding="utf-8")
        return path

    f, g = "minicnn.optim.x_f__mutmut_", "minicnn.optim.x_g__mutmut_"
    meta(tmp_path / "first", {f + "1": 1, f + "2": 0, f + "3": 1, g + "1": 1}, {"x_f": "same", "x_g": "old"})
    mine = meta(tmp_path / "module", {f + "1": None, f + "2": None, f + "3": 0, g + "1": None}, {"x_f": "same", "x_g": "new"})
    assert mutation._merge_first(tmp_path / "first", tmp_path / "module") == 1
    assert json.loads(mine.read_text(encoding="utf-8"))["exit_code_by_key"] == {f + "1": 1, f + "2": None, f + "3": 0, g + "1": None}


def test_a_first_pass_of_a_retry_replaces_the_verdict_of_the_survivors_it_kills(tmp_path):
    """``run --retry --first``: a survivor run again is killed by the tests as they are now; a survivor not run again,
    and a killed mutant, keep their verdicts."""
    def meta(folder, codes):
        path = folder / "mutants" / "minicnn" / "optim.py.meta"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"exit_code_by_key": codes, "hash_by_function_name": {"x_f": "h"},
                                    "type_check_error_by_key": {}, "durations_by_key": {}, "estimated_durations_by_key": {}}),
                        encoding="utf-8")
        return path

    f = "minicnn.optim.x_f__mutmut_"
    meta(tmp_path / "first", {f + "1": 1, f + "2": 1, f + "3": 1, f + "4": 0})
    mine = meta(tmp_path / "module", {f + "1": 0, f + "2": 0, f + "3": 33, f + "4": 0})
    assert mutation._merge_first(tmp_path / "first", tmp_path / "module", retried={f + "1", f + "3", f + "4"}) == 2
    assert json.loads(mine.read_text(encoding="utf-8"))["exit_code_by_key"] == {f + "1": 1, f + "2": 0, f + "3": 1, f + "4": 0}


def test_a_first_pass_takes_only_tests_of_the_module_s_mutation_suite():
    assert mutation._in_suite("nn", "tests/test_mutants_nn.py") and not mutation._in_suite("nn", "tests/test_models.py")
    assert mutation._in_suite("functional", "tests/test_mutants_functional.py")
    assert not mutation._in_suite("functional", "tests/test_models.py")  # left out of the suite: not a kill there
    assert not mutation._in_suite("functional", "tests/gpu/test_cupy.py")
