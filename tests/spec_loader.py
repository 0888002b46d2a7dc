"""Load and validate the slide spec (``spec/*.toml``) with the standard library's ``tomllib``.

Each file of ``spec/`` mirrors one slide deck and holds a ``deck`` name, a
``title`` and a list of ``[[entry]]`` tables, one per checkable claim (see
``spec/README.md`` for the format). ``load_spec()`` reads every file, checks
the fields every entry must have and returns the entries in file order;
any malformed entry raises ``SpecError`` naming the file, the entry and the
field.

The five deck file names are written here, not read from the slides folder,
so the spec tests run from a clean clone that has no slides next to it.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from numbers import Real
from pathlib import Path

SPEC_DIR = Path(__file__).resolve().parent.parent / "spec"

#: The slide decks the project mirrors, and the spec file that holds each one's claims.
DECKS = {
    "000_5f24bd8423292174.txt": "variantes.toml",
    "001_4dad5adb3ac1e716.txt": "arquitecturas.toml",
    "002_35ce60e4ae78ad9e.txt": "redes_convolucionales_procesamiento.toml",
    "003_7c437a475fa69432.txt": "capas_convolucionales.toml",
    "004_d4430ea77d2b90c2.txt": "diplomado.toml",
}

#: Fields every entry must have, all strings.
REQUIRED = ("id", "deck", "slide", "claim", "check")
#: Fields that describe an entry rather than hold values to check.
META = frozenset(
    REQUIRED
    + (
        "section",
        "quote",
        "note",
        "source",
        "see_also",
        "status",
        "erratum",
        "slide_value",
        "correct_value",
        "why",
        "slide_variant",
        "fails_with",
        "code",
    )
)
#: Fields an erratum entry must have.
ERRATUM_FIELDS = ("slide_value", "correct_value", "why", "slide_variant", "fails_with")
#: The one status an entry may carry: a claim about a whole network, checked with the model zoo.
MODEL_ZOO = "model-zoo"

_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


class SpecError(ValueError):
    """A spec file or entry does not follow the format of ``spec/README.md``."""


def values(entry):
    """The entry's value fields: every field that is not metadata."""
    return {key: value for key, value in entry.items() if key not in META}


def is_numeric(value):
    """True for a number, or a list / table whose leaves are all numbers (bools excluded)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, Real):
        return True
    if isinstance(value, list):
        return len(value) > 0 and all(is_numeric(v) for v in value)
    if isinstance(value, dict):
        return len(value) > 0 and all(is_numeric(v) for v in value.values())
    return False


def _fail(path, entry_id, message):
    where = f"{path.name}" + (f", entry {entry_id!r}" if entry_id else "")
    raise SpecError(f"{where}: {message}")


def validate_entry(entry, path, deck):
    """Check one entry's fields; raise ``SpecError`` with the file, the id and the problem."""
    entry_id = entry.get("id")
    for field in REQUIRED:
        if field not in entry:
            _fail(path, entry_id, f"missing required field {field!r} (required: {', '.join(REQUIRED)})")
        if not isinstance(entry[field], str) or not entry[field].strip():
            _fail(path, entry_id, f"field {field!r} must be a non-empty string, got {entry[field]!r}")
    if not _ID.match(entry_id):
        _fail(path, entry_id, "id must be snake_case: lowercase letters, digits and single underscores")
    if entry["deck"] != deck:
        _fail(path, entry_id, f"deck {entry['deck']!r} differs from the file's deck {deck!r}")
    if not values(entry):
        _fail(path, entry_id, "has no values to check (every field is metadata)")
    status = entry.get("status")
    if status is not None and status != MODEL_ZOO:
        _fail(path, entry_id, f"status must be {MODEL_ZOO!r} when present, got {status!r}")
    if (status == MODEL_ZOO) != (entry["check"] == "architecture"):
        _fail(path, entry_id, f"check 'architecture' and status {MODEL_ZOO!r} go together")
    if "erratum" in entry:
        if entry["erratum"] is not True:
            _fail(path, entry_id, "erratum must be true when present (leave it out otherwise)")
        for field in ERRATUM_FIELDS:
            if field not in entry:
                _fail(path, entry_id, f"an erratum needs {', '.join(ERRATUM_FIELDS)}; {field!r} is missing")
        if not isinstance(entry["slide_variant"], dict) or not entry["slide_variant"]:
            _fail(path, entry_id, "slide_variant must be a non-empty table of fields that reproduce the slide")
        if not isinstance(entry["fails_with"], str) or not entry["fails_with"].strip():
            _fail(path, entry_id, "fails_with must be a non-empty regular expression the slide version's failure matches")
        try:
            re.compile(entry["fails_with"])
        except re.error as exc:
            _fail(path, entry_id, f"fails_with is not a valid regular expression: {exc}")
        if entry["slide_value"] == entry["correct_value"]:
            _fail(path, entry_id, "slide_value equals correct_value: that is no erratum")
    else:
        for field in ERRATUM_FIELDS:
            if field in entry:
                _fail(path, entry_id, f"field {field!r} belongs to errata only (set erratum = true)")
    code = entry.get("code")
    if not isinstance(code, list) or not code or not all(isinstance(c, str) and c.strip() for c in code):
        _fail(path, entry_id, "code must be a non-empty list of places (dotted names, kernels/... files, tests/...::name)")
    see_also = entry.get("see_also", [])
    if not isinstance(see_also, list) or not all(isinstance(s, str) and s.split(":")[0] in DECKS for s in see_also):
        _fail(path, entry_id, "see_also must be a list of 'DECK_FILE: slide title' strings naming known decks")


def load_file(path):
    """Read one spec file; return its entries (dicts), validated."""
    path = Path(path)
    with path.open("rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{path.name}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"deck", "title", "entry"}
    if unknown:
        _fail(path, None, f"unknown top-level keys {sorted(unknown)}; expected deck, title and [[entry]] tables")
    deck = data.get("deck")
    if deck not in DECKS:
        _fail(path, None, f"deck must be one of {sorted(DECKS)}, got {deck!r}")
    if DECKS[deck] != path.name:
        _fail(path, None, f"deck {deck} belongs in spec/{DECKS[deck]}, not in {path.name}")
    entries = data.get("entry", [])
    if not isinstance(entries, list) or not entries:
        _fail(path, None, "holds no [[entry]] tables")
    for entry in entries:
        validate_entry(entry, path, deck)
    return entries


@lru_cache(maxsize=None)
def _load_all(spec_dir):
    spec_dir = Path(spec_dir)
    entries, seen = [], {}
    for path in sorted(spec_dir.glob("*.toml")):
        for entry in load_file(path):
            if entry["id"] in seen:
                raise SpecError(f"{path.name}: id {entry['id']!r} is already used in {seen[entry['id']]}")
            seen[entry["id"]] = path.name
            entries.append(entry)
    return tuple(entries)


def load_spec(spec_dir=SPEC_DIR):
    """All entries of every ``spec/*.toml``, validated, ids unique across files."""
    return list(_load_all(str(spec_dir)))
