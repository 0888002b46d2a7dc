"""tools/mutation_equivalent/<module>.toml stays honest without running mutmut: every entry has a reason and a kind,
names one mutant once, and names a function that still exists (a renamed or removed function leaves its
justifications stale; tools/mutation.py report then finds the rest, those whose mutant changed)."""

import importlib
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
        assert m.get("kind", "equivalent") in ("equivalent", "gpu-only") and len(m["reason"]) > 20, m


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
