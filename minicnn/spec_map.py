"""The slide-to-code map: ``minicnn spec [DECK]`` lists a deck's claims and where each one is computed.

Every entry of ``spec/*.toml`` names its places in a ``code`` list:

* a dotted name, ``minicnn.shapes.conv_output_size`` or ``minicnn.nn.Conv2d``:
  the formula or the reference code, found by import;
* a file of the kernels, ``kernels/cpu/conv2d.pyx``;
* a test, ``tests/test_spec.py::check_output_size``: the function that checks
  the claim.

Places are resolved when the map is printed (``inspect`` for the code, the
file itself for kernels and tests), so the source file and line shown are
always where the code is now, wherever it moves. ``resolve(place)`` raises
``LookupError`` for a place that no longer exists; the spec tests resolve
every entry's places.

Run from a checkout (the spec files live in ``spec/`` next to the package).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import tomllib
from functools import lru_cache
from pathlib import Path

__all__ = ["SPEC_DIR", "ROOT", "Place", "load_decks", "resolve", "status", "add_parser", "run"]

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT / "spec"


class Place:
    """Where a claim lives: ``kind`` ("code", "kernel" or "test"), the ``place`` as written, ``file`` and ``line``."""

    def __init__(self, place, kind, file, line):
        self.place, self.kind, self.file, self.line = place, kind, file, line

    def where(self):
        return f"{self.file}:{self.line}" if self.line else self.file

    def __repr__(self):
        return f"Place({self.place!r}, {self.kind}, {self.where()})"


def _relative(path):
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _import_dotted(name):
    """The object a dotted name denotes: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                raise LookupError(f"{name}: {'.'.join(parts[:cut])} has no attribute path {'.'.join(parts[cut:])!r}")
            obj = getattr(obj, attribute)
        return obj
    raise LookupError(f"{name}: no module of this name can be imported")


@lru_cache(maxsize=None)
def _definitions(path, mtime):
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    return {node.name: node.lineno for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _defined_at(path, name):
    """Line of the top-level function or class ``name`` in the Python file ``path`` (read, not imported)."""
    line = _definitions(str(path), path.stat().st_mtime).get(name)
    if line is None:
        raise LookupError(f"{_relative(path)} defines no function or class {name!r}")
    return line


def resolve(place):
    """Resolve one place of an entry's ``code`` list to a ``Place``; ``LookupError`` if it does not exist."""
    if "::" in place:
        file, name = place.split("::", 1)
        path = ROOT / file
        if not path.is_file():
            raise LookupError(f"{place}: no test file {file}")
        return Place(place, "test", file, _defined_at(path, name))
    if "/" in place:
        path = ROOT / place
        if not path.is_file():
            raise LookupError(f"{place}: no such file")
        return Place(place, "kernel", place, None)
    obj = _import_dotted(place)
    target = inspect.unwrap(obj.fget if isinstance(obj, property) else obj)
    try:
        file = inspect.getsourcefile(target)
        _, line = inspect.getsourcelines(target)
    except (TypeError, OSError) as exc:
        raise LookupError(f"{place}: its source cannot be located ({exc})") from exc
    return Place(place, "code", _relative(file), line)


def load_decks(spec_dir=SPEC_DIR):
    """``{deck file name: (spec file name, title, entries)}`` for every ``spec/*.toml``, in file order."""
    spec_dir = Path(spec_dir)
    if not spec_dir.is_dir():
        raise FileNotFoundError(f"no spec/ folder at {spec_dir}: `minicnn spec` runs from a checkout of minicnn")
    decks = {}
    for path in sorted(spec_dir.glob("*.toml")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        decks[data["deck"]] = (path.name, data.get("title", ""), data.get("entry", []))
    return dict(sorted(decks.items()))


def status(entry):
    """How an entry is checked, in a few words."""
    if entry.get("erratum"):
        return f"erratum: slide {entry['slide_value']}, correct {entry['correct_value']}"
    if entry.get("status") == "model-zoo":
        return "checked on the model zoo"
    return "checked"


def _pick_deck(decks, name):
    matches = [deck for deck, (file, _, _) in decks.items()
               if deck == name or deck.startswith(name) or file == name or Path(file).stem == name]
    if len(matches) != 1:
        choices = ", ".join(f"{deck[:3]} ({file})" for deck, (file, _, _) in decks.items())
        raise ValueError(f"DECK {name!r} matches {len(matches)} decks; give one of {choices}")
    return matches[0]


def _print_overview(decks):
    print(f"{'deck':<28} {'spec file':<44} {'claims':>6} {'errata':>6}")
    for deck, (file, _, entries) in decks.items():
        errata = sum(1 for e in entries if e.get("erratum"))
        print(f"{deck:<28} spec/{file:<39} {len(entries):>6} {errata:>6}")
    print("\nminicnn spec DECK lists a deck's claims (DECK: 000..004, or the spec file's name).")


def _print_deck(deck, file, title, entries, only=None):
    print(f"{deck} — {title} (spec/{file})")
    shown = 0
    for entry in entries:
        if only and entry["id"] != only:
            continue
        shown += 1
        print(f"\n{entry['id']}  [{status(entry)}]")
        section = f" / {entry['section']}" if "section" in entry else ""
        print(f"  slide: {entry['slide']}{section}")
        print(f"  claim: {entry['claim']}")
        for place in entry.get("code", []):
            try:
                found = resolve(place)
                where = f"  ({found.where()})" if found.line else ""
                print(f"  {found.kind:<6} {place}{where}")
            except LookupError as exc:
                print(f"  MISSING {exc}")
    if only and not shown:
        raise ValueError(f"deck {deck} has no entry {only!r}")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "spec",
        help="list a slide deck's claims, their status and where each is computed",
        description=(
            "List the checkable claims of a slide deck (spec/*.toml): each claim's status and where it lives, "
            "the formula and reference code (file:line, found at run time), the kernel and the test that checks "
            "it. Without DECK, one line per deck.\n\n"
            "example: minicnn spec 003   |   minicnn spec 002 --id lenet5_c1_params"
        ),
    )
    p.add_argument("deck", nargs="?", help="deck number (000..004), deck file or spec file name")
    p.add_argument("--id", help="show this entry only")
    p.add_argument("--spec-dir", default=str(SPEC_DIR), help="folder of the spec files (default: spec/ of this checkout)")
    return p


def run(args):
    decks = load_decks(args.spec_dir)
    if args.deck is None:
        if args.id:
            for deck, (file, title, entries) in decks.items():
                if any(e["id"] == args.id for e in entries):
                    return _print_deck(deck, file, title, entries, only=args.id)
            raise ValueError(f"no entry {args.id!r} in any deck")
        return _print_overview(decks)
    deck = _pick_deck(decks, args.deck)
    file, title, entries = decks[deck]
    _print_deck(deck, file, title, entries, only=args.id)
