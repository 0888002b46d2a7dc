"""spec/README.md states coverage as measured: its table and its list of entries are the spec files'.

The "Coverage, as measured" section of spec/README.md counts, per deck, the
checkable claims, the entries and those checked against minicnn code, and
lists every entry with its slide; the claims judged not checkable follow,
each with why. These tests fail when an entry is added or removed without
the section following.
"""

from __future__ import annotations

import re

from spec_loader import DECKS, SPEC_DIR, load_spec
from test_spec import CHECKERS

ENTRIES = load_spec()
README = (SPEC_DIR / "README.md").read_text(encoding="utf-8")
SECTION = README.split("\n## Coverage, as measured\n", 1)[1].split("\n## ", 1)[0]


def test_the_table_counts_the_entries_of_each_deck():
    rows = dict(re.findall(r"^\| (\d{3}|all) \| (\d+ \| \d+ \| \d+ \| \d+) \|$", SECTION, flags=re.MULTILINE))
    for deck in DECKS:
        entries = [e for e in ENTRIES if e["deck"] == deck]
        errata = sum(1 for e in entries if e.get("erratum"))
        # every entry's checker computes with minicnn code: all are counted in the third column
        assert all(e["check"] in CHECKERS or e["check"] == "architecture" for e in entries)
        assert rows[deck[:3]] == f"{len(entries)} | {len(entries)} | {len(entries)} | {errata}", deck
    n, errata = len(ENTRIES), sum(1 for e in ENTRIES if e.get("erratum"))
    assert rows["all"] == f"{n} | {n} | {n} | {errata}"


def test_the_list_names_every_entry_with_its_deck_and_slide():
    listed = re.findall(r"^- `([a-z0-9_]+)` — (.+?) — `([a-z0-9_]+)`", SECTION, flags=re.MULTILINE)
    assert sorted(i for i, _, _ in listed) == sorted(e["id"] for e in ENTRIES)
    by_id = {e["id"]: e for e in ENTRIES}
    for entry_id, slide, check in listed:
        entry = by_id[entry_id]
        assert slide.startswith(entry["slide"]) and check == entry["check"], entry_id
    for deck in DECKS:
        block = SECTION.split(f"Deck {deck}:", 1)[1].split("\nDeck ", 1)[0]
        ids = re.findall(r"^- `([a-z0-9_]+)`", block, flags=re.MULTILINE)
        assert ids == [e["id"] for e in ENTRIES if e["deck"] == deck], deck


def test_every_deck_says_what_it_judged_not_checkable():
    judged = SECTION.split("### Claims judged not checkable, and why", 1)[1]
    for deck in DECKS:
        part = judged.split(f"Deck {deck[:3]}:", 1)
        assert len(part) == 2, f"deck {deck[:3]} has no list of claims judged not checkable"
        reasons = part[1].split("\nDeck ", 1)[0]
        assert re.search(r"^- .+ — .+", reasons, flags=re.MULTILINE), f"deck {deck[:3]}: each item needs a reason"
