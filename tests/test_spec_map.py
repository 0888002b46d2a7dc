"""The slide-to-code map: every spec entry's ``code`` places exist, and ``minicnn spec`` prints them.

Places are importable names, kernel files and test functions
(``minicnn/spec_map.py``); they are resolved here, so a moved or renamed
function fails this test until its entries follow it.
"""

from __future__ import annotations

import re

import pytest

from minicnn import spec_map
from minicnn.cli import main
from spec_loader import DECKS, load_spec
from test_spec import CHECKERS
from test_spec_architectures import CHECKS as ZOO_CHECKS

ENTRIES = load_spec()


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_every_place_of_an_entry_exists(entry):
    places = [spec_map.resolve(place) for place in entry["code"]]
    kinds = {p.kind for p in places}
    assert "code" in kinds, f"{entry['id']}: names no minicnn code, only {entry['code']}"
    tests = [p.place for p in places if p.kind == "test"]
    if entry["check"] == "architecture":
        expected = f"tests/test_spec_architectures.py::{ZOO_CHECKS[entry['id']].__name__}"
    else:
        expected = f"tests/test_spec.py::{CHECKERS[entry['check']][0].__name__}"
    assert tests == [expected], f"{entry['id']}: its test is {expected}, the entry names {tests}"
    for p in places:
        if p.kind == "code":
            assert p.place.startswith("minicnn.") and p.file.startswith("minicnn/") and p.line >= 1, p


def test_kernel_checks_name_their_kernel():
    for entry in ENTRIES:
        if CHECKERS.get(entry["check"], (None, False))[1] and entry["check"] not in (
            "residual_block", "block_composition", "branch_concat", "channel_shuffle", "plain_recurrence",
        ):
            assert any(p.startswith("kernels/cpu/") for p in entry["code"]), f"{entry['id']} runs kernels but names none"


def test_resolve_reports_what_is_missing():
    with pytest.raises(LookupError, match="has no attribute path 'no_such_formula'"):
        spec_map.resolve("minicnn.shapes.no_such_formula")
    with pytest.raises(LookupError, match="no such file"):
        spec_map.resolve("kernels/cpu/no_such_kernel.pyx")
    with pytest.raises(LookupError, match="defines no function or class 'check_nothing'"):
        spec_map.resolve("tests/test_spec.py::check_nothing")
    found = spec_map.resolve("minicnn.shapes.conv_output_size")
    source = (spec_map.ROOT / found.file).read_text(encoding="utf-8").splitlines()
    # the line of the definition, or of a decorator just above it
    assert found.file == "minicnn/shapes.py" and any("def conv_output_size(" in line for line in source[found.line - 1 : found.line + 2])


def test_minicnn_spec_lists_decks_and_a_decks_claims(capsys):
    assert main(["spec"]) == 0
    overview = capsys.readouterr().out
    for deck, file in DECKS.items():
        count = sum(1 for e in ENTRIES if e["deck"] == deck)
        assert re.search(rf"^{deck}\s+spec/{file}\s+{count}\s", overview, flags=re.MULTILINE), (deck, overview)
    assert main(["spec", "003"]) == 0
    listing = capsys.readouterr().out
    ids = [e["id"] for e in ENTRIES if e["deck"].startswith("003")]
    assert all(f"\n{i}  [" in listing for i in ids)
    assert "minicnn/shapes.py:" in listing and "MISSING" not in listing
    assert "erratum: slide 10241, correct 10250" in listing


def test_minicnn_spec_one_entry_and_bad_decks(capsys):
    assert main(["spec", "--id", "googlenet_auxiliary_classifiers"]) == 0
    out = capsys.readouterr().out
    assert "minicnn.models.GoogLeNet.training_loss  (minicnn/models/zoo.py:" in out
    assert main(["spec", "9"]) == 2
    assert "DECK '9' matches 0 decks" in capsys.readouterr().err
