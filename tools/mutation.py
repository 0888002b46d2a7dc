"""Mutation testing of the reference code a student reads, with mutmut 3.

    python tools/mutation.py run shapes            # mutate minicnn/shapes.py, run the tests on every mutant
    python tools/mutation.py run nn --minutes 5    # stop after 5 minutes; the next run continues
    python tools/mutation.py run nn --retry        # after new tests: run the survivors not justified again
    python tools/mutation.py run nn --only conv.py # only the mutants of nn/conv.py still without a verdict
    python tools/mutation.py run nn --first tests/test_mutants_nn.py  # those tests first, the suite for the rest
    python tools/mutation.py report                # score per module, survivors not yet justified
    python tools/mutation.py report --write        # ... and record it in tools/mutation_scores.json
    python tools/mutation.py show shapes           # the diff of each such survivor

Modules (``MODULES``): shapes.py, backends/numpy_backend.py, functional.py,
nn/, optim.py, graph.py. The run happens in a copy of the checkout
(``--workdir``, default ``/tmp/minicnn-mutation``, one folder per module), so mutmut's ``mutants/``
folder and its configuration never touch the working tree; the compiled
kernels are imported from the checkout (the editable install maps
``minicnn.kernels`` there), the mutated Python from the copy.

A surviving mutant is either killed by a new test or, when it cannot change
any result (an equivalent mutant), listed in ``tools/mutation_equivalent/<module>.toml``
with a one-line reason; ``report`` counts those as justified and prints the
rest. The score is ``(killed + justified) / mutants run`` per module (a mutant no
test reaches counts as a survivor); ``killed / mutants run`` is printed too.

mutmut is CPU-heavy (each mutant runs the tests that reach its function, up
to a minute for the reference backend's helpers): on a shared machine run it
under ``nice`` with ``--children 1`` and in chunks with ``--minutes`` (each
start costs a full run of the suite, so chunks of 20 minutes or more). Every
``run`` records in ``<workdir>/<module>/measured.json`` the commit measured
and the date, which ``report --write`` copies into ``tools/mutation_scores.json``.

A run takes longer than a working session on two cores (about 8,800 mutants), and its workdir does not
outlive the machine, so ``report --write`` also records every mutant's verdict, with mutmut's hash of
each function's source, in ``tools/mutation_results/<module>.json``; ``run`` in a fresh workdir starts
from that record, and mutmut tests again only the mutants of functions whose source changed (and those
never run). ``--retry`` then runs the survivors against the tests as they are now.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "tools" / "mutation_equivalent"  # one <module>.toml per module of MODULES
SCORES = ROOT / "tools" / "mutation_scores.json"
#: Every mutant's verdict, one <module>.json per module (``report --write`` writes them): a later ``run`` on a
#: fresh machine starts from them, and mutmut keeps a verdict only while its function's source hash is unchanged.
RESULTS = ROOT / "tools" / "mutation_results"
#: the kinds of justified survivors (see _equivalents)
KINDS = ("equivalent", "gpu-only", "rounding-only")

#: The tests mutants are run against: the whole tests/ folder but the slow end-to-end runs (training,
#: benchmarks, the GPU and instruction-set builds, data downloads); mutmut runs, for each mutant, only
#: the tests that reach its function. A folder, not a list, so that a new test file is picked up without
#: resetting mutmut's cached verdicts (a changed selection resets them all).
IGNORED = ["tests/gpu", "tests/test_train.py", "tests/test_bench.py", "tests/test_kernel_isa.py", "tests/test_data.py",
           # and the end-to-end tests that reach the reference code only through whole programs, each a large share of
           # the suite's time (seconds of its 2m50s on a 2-core Zen 4, dev profile): the CUDA kernels compiled with g++
           # (53 s), the graded exercises and notebooks (28 s), the API fuzzer (16 s), ONNX and PyTorch-weight
           # exchange (18 s), the model zoo (7 s), NVRTC compiles (6 s), the browser test. A mutant they alone would
           # kill survives, so the score is a lower bound of the score against all of tests/.
           "tests/test_cuda_on_cpu.py", "tests/test_exercises.py", "tests/test_api_fuzz.py", "tests/test_onnx.py",
           "tests/test_torch_weights.py", "tests/test_models.py", "tests/test_gpu_sources.py", "tests/test_explore.py"]
#: nn/ is ~2,700 lines of layers that nearly every test reaches (the model zoo, the property and fuzz tests build
#: whole networks), so with the folder above each nn mutant ran minutes of tests and mutmut managed ~18 mutants a
#: minute. Its mutants run against the tests that exercise the layers directly instead: a mutant killed by this
#: subset is killed by the whole suite too, so the nn score is a lower bound of the score against tests/.
#: ~40 s of tests in all (test_options.py 8 s, test_variants.py 6 s, test_nn.py 5 s, test_graph.py 5 s, the rest
#: under 4 s each, on this 2-core Xeon).
NN_SUITE = ["tests/test_nn.py", "tests/test_variants.py", "tests/test_options.py", "tests/test_graph.py",
            "tests/test_spec_mutants.py", "tests/test_robustness.py", "tests/test_optim.py",
            "tests/test_graph_summary.py", "tests/test_mutants_nn.py", "tests/test_mutants_nn_conv.py"]
#: module name -> the tests its mutants run against (default: tests/ less IGNORED)
SUITES = {"nn": NN_SUITE}
#: module name -> files to mutate
MODULES = {
    "shapes": ["minicnn/shapes.py"],
    "numpy_backend": ["minicnn/backends/numpy_backend.py"],
    "functional": ["minicnn/functional.py"],
    "nn": ["minicnn/nn/*"],
    "optim": ["minicnn/optim.py"],
    "graph": ["minicnn/graph.py"],
}
STATUS = {0: "survived", 1: "killed", 3: "killed", -24: "timeout", 24: "timeout", 33: "no tests", 34: "skipped",
          35: "suspicious", 36: "timeout", 37: "caught by type check", 152: "timeout", 255: "timeout", -11: "segfault",
          -9: "killed"}


def _copy_checkout(workdir):
    """A copy of the tracked files of the checkout (plus spec/, tests/, kernels/ as they are now)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        source, target = ROOT / name, workdir / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _write_config(workdir, module, tests=None):
    files = MODULES[module]
    tests = tests or SUITES.get(module, ["tests/"] + [f"--ignore={path}" for path in IGNORED])
    lines = [
        "[mutmut]",
        "source_paths = minicnn/",
        "only_mutate =\n" + "\n".join(f"    {f}" for f in files),
        "also_copy =\n    spec/\n    kernels/\n    tools/",
        "pytest_add_cli_args_test_selection =\n" + "\n".join(f"    {t}" for t in tests),
        "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -q",
        "process_isolation = forkserver",
    ]
    (workdir / "setup.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _only(base, module, files):
    """mutmut name patterns for the mutants of ``files`` (``module.py``, ... inside the module's folder) not run yet:
    patterns name mutants explicitly, which mutmut then runs again even when they have a verdict, so once
    mutmut has written its results the names still without one are passed instead."""
    folder = MODULES[module][0].removesuffix("/*").replace("/", ".")
    prefixes = [f"{folder}.{name.removesuffix('.py')}." for name in files]
    results = {n: s for n, s in _results(base).items() if _module_of(n) == module}
    if not results:
        return [p + "*" for p in prefixes]
    return [n for n, s in results.items() if s == "not run" and any(n.startswith(p) for p in prefixes)]


def _in_suite(module, test_file):
    """Whether ``test_file`` is one of the tests ``module``'s mutants run against."""
    name = test_file.removeprefix("./")
    if module in SUITES:
        return name in SUITES[module]
    return name.startswith("tests/") and not any(name == p or name.startswith(p + "/") for p in IGNORED)


def _run_first(module, base, workdir, first, children, env, minutes, retried=()):
    """The mutants without a verdict against the test files ``first`` alone, in a mutmut workdir of their own
    (``<module>-first``: another test selection is another mutmut cache); those they kill (a test failed: exit
    code 1) get that verdict in the module's workdir, so that its run against the whole suite has only the
    rest to run. A mutant killed by a few tests is killed by the suite that holds them; a survivor here is
    run again there. ``retried``: survivors (``--retry``) run here too, and a kill here replaces their verdict."""
    fast = base / f"{module}-first"
    _merge_first(fast, workdir, retried)  # what an interrupted first pass found
    results = {n: s for n, s in _results(base).items() if _module_of(n) == module}
    pending = [n for n, s in results.items() if s == "not run"] if results else []
    pending += [n for n in retried if n not in pending]
    if results and not pending:
        return 0
    fast.mkdir(parents=True, exist_ok=True)
    _copy_checkout(fast)
    _write_config(fast, module, tests=first)
    try:
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *pending], cwd=fast,
                       env=env, timeout=None if minutes is None else minutes * 60)
    except subprocess.TimeoutExpired:
        print(f"stopped the first pass after {minutes} minutes", file=sys.stderr)
    marked = _merge_first(fast, workdir, retried)
    print(f"{module}: {marked} mutants killed by {' '.join(first)} alone")
    return marked


def _merge_first(fast, workdir, retried=()):
    """Copy the kills of the first pass (``fast``) into ``workdir``'s mutmut results where it has no verdict yet, or
    where it has survived and is one of ``retried`` (run again against the tests as they are now)."""
    marked = 0
    for meta in sorted((fast / "mutants").glob("**/*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        killed = {n for n, code in data.get("exit_code_by_key", {}).items() if code == 1}
        target = workdir / meta.relative_to(fast)
        if target.is_file():
            mine = json.loads(target.read_text(encoding="utf-8"))
        else:  # a fresh workdir: mutmut will merge this by the function hashes when it mutates the file
            mine = {"exit_code_by_key": {n: None for n in data["exit_code_by_key"]},
                    "hash_by_function_name": data.get("hash_by_function_name", {}),
                    "type_check_error_by_key": {}, "durations_by_key": {}, "estimated_durations_by_key": {}}
            target.parent.mkdir(parents=True, exist_ok=True)
        if data.get("hash_by_function_name") != mine.get("hash_by_function_name"):
            # the first pass mutated other source: keep only the kills of functions whose hash agrees
            same = {f for f, h in data.get("hash_by_function_name", {}).items()
                    if mine.get("hash_by_function_name", {}).get(f) == h}
            killed = {n for n in killed if n.split("__mutmut_")[0].rsplit(".", 1)[-1] in same}
        for name in killed:
            verdict = mine["exit_code_by_key"].get(name, 1)
            if verdict is None or (name in retried and STATUS.get(verdict) in ("survived", "no tests")):
                mine["exit_code_by_key"][name] = 1
                marked += 1
        target.write_text(json.dumps(mine, indent=4), encoding="utf-8")
    return marked


def run(module, workdir, minutes, children, retry=False, only=None, first=None):
    base, workdir = Path(workdir), Path(workdir) / module  # one copy per module: mutmut's cache is per configuration
    workdir.mkdir(parents=True, exist_ok=True)
    _copy_checkout(workdir)  # the checkout as it is now: mutmut copies it on into workdir/mutants
    restored = restore_verdicts(module, workdir)
    if restored:
        print(f"{module}: {restored} verdicts from {RESULTS.relative_to(ROOT)}/{module}.json (mutmut runs again the "
              "mutants of every function whose source changed since)")
    _write_config(workdir, module)
    env = dict(os.environ, MINICNN_AUTOTUNE="0", MINICNN_HYPOTHESIS_PROFILE="dev")

    def survivors():  # not justified: run again, against the tests as they are now
        justified = _equivalents()
        return [name for name, status in _results(base).items()
                if status in ("survived", "no tests") and _module_of(name) == module and name not in justified]

    if first:
        outside = [f for f in first if not _in_suite(module, f)]
        if outside:
            raise SystemExit(f"--first: {', '.join(outside)} not in the {module} mutation suite: a kill there would "
                             "not be a kill by the suite the score is over")
        _run_first(module, base, workdir, first, children, env, minutes, survivors() if retry else ())
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children)]
    names = []
    if retry:
        names += survivors()
    if only:  # these files first: mutmut otherwise orders all the module's mutants by the time of their tests
        names += _only(base, module, only)
    measured = _measurement()  # the checkout as copied
    if (retry or only) and not names:
        print(f"{module}: no survivors to run again and no mutants without a verdict in the files named")
    else:
        try:
            subprocess.run(command + names, cwd=workdir, env=env, timeout=None if minutes is None else minutes * 60)
        except subprocess.TimeoutExpired:
            print(f"stopped after {minutes} minutes; run again to continue", file=sys.stderr)
    (workdir / "measured.json").write_text(json.dumps(measured, indent=1) + "\n", encoding="utf-8")
    return 0


def _module_files(module):
    """The source files of ``module``, relative to the checkout."""
    out = []
    for pattern in MODULES[module]:
        out += sorted(str(path.relative_to(ROOT)) for path in ROOT.glob(pattern) if path.suffix == ".py")
    return out


def save_verdicts(module, workdir):
    """``tools/mutation_results/<module>.json``: per source file, mutmut's function hashes and each mutant's
    exit code (null: not run yet), from ``<workdir>/<module>/mutants/<file>.meta``; plus the commit measured."""
    files = {}
    for name in _module_files(module):
        meta = Path(workdir) / module / "mutants" / (name + ".meta")
        if meta.is_file():
            data = json.loads(meta.read_text(encoding="utf-8"))
            files[name] = {"hash_by_function_name": data.get("hash_by_function_name", {}),
                           "exit_code_by_key": data.get("exit_code_by_key", {})}
    if not files:
        return 0
    measured_file = Path(workdir) / module / "measured.json"
    measured = json.loads(measured_file.read_text(encoding="utf-8")) if measured_file.is_file() else {}
    RESULTS.mkdir(exist_ok=True)
    record = {"module": module, **measured, "files": files}
    (RESULTS / f"{module}.json").write_text(json.dumps(record, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    return sum(len(f["exit_code_by_key"]) for f in files.values())


def restore_verdicts(module, workdir):
    """Before a run in a fresh ``workdir``: write the recorded verdicts where mutmut reads them
    (``mutants/<file>.meta``), for the files that have no results there yet. Returns how many were written."""
    record_file = RESULTS / f"{module}.json"
    if not record_file.is_file():
        return 0
    record, count = json.loads(record_file.read_text(encoding="utf-8")), 0
    for name, data in record.get("files", {}).items():
        meta = Path(workdir) / "mutants" / (name + ".meta")
        if meta.exists() or (Path(workdir) / "mutants" / name).exists():
            continue  # this workdir has mutmut's own results for the file
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"exit_code_by_key": data["exit_code_by_key"],
                                    "hash_by_function_name": data["hash_by_function_name"],
                                    "type_check_error_by_key": {}, "durations_by_key": {},
                                    "estimated_durations_by_key": {}}), encoding="utf-8")
        count += sum(code is not None for code in data["exit_code_by_key"].values())
    return count


def _git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _measurement():
    """The commit the mutants run against (and whether minicnn/ or tests/ had changes on top of it) and the date,
    written to ``<workdir>/<module>/measured.json`` for ``report --write``."""
    dirty = bool(_git("status", "--porcelain", "--untracked-files=all", "--", "minicnn", "tests"))
    return {"commit": _git("rev-parse", "HEAD"), "uncommitted_changes": dirty,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _listed():
    """``[(module, entry)]`` for every ``[[mutant]]`` of ``tools/mutation_equivalent/<module>.toml``."""
    out = []
    for path in sorted(EQUIVALENT.glob("*.toml")):
        with path.open("rb") as handle:
            out += [(path.stem, m) for m in tomllib.load(handle).get("mutant", [])]
    return out


def _equivalents():
    """``{mutant name: kind}`` of the justified survivors: "equivalent"; "gpu-only" (it changes CuPy code paths
    only, which the CPU suite cannot reach; tests/gpu runs them where a GPU is); or "rounding-only" (the same
    formula summed in another order: the results agree up to rounding, whose last bits depend on the CPU and BLAS,
    so no test that holds on every machine can tell them apart; counted apart from the equivalent ones)."""
    out = {}
    for module, m in _listed():
        if not m.get("reason") or m.get("kind", "equivalent") not in KINDS:
            raise ValueError(f"{module}.toml: {m.get('name')!r} needs a reason and a kind ({', '.join(KINDS)})")
        if _module_of(m["name"]) != module:
            raise ValueError(f"{module}.toml: {m['name']!r} is a mutant of {_module_of(m['name'])}, not of {module}")
        out[m["name"]] = m.get("kind", "equivalent")
    return out


def _results(workdir):
    """``{mutant name: status}`` from mutmut's ``.meta`` files in ``workdir/<module>/mutants``."""
    out = {}
    for meta in sorted(Path(workdir).glob("*/mutants/**/*.py.meta")):
        folder = meta.relative_to(workdir).parts[0]
        data = json.loads(meta.read_text(encoding="utf-8"))
        for name, code in data.get("exit_code_by_key", {}).items():
            if _module_of(name) != folder:
                continue
            out[name] = "not run" if code is None else STATUS.get(code, f"exit {code}")
    return out


def _module_of(name):
    dotted = name.split("__mutmut_")[0].split(".x")[0]
    for module, files in MODULES.items():
        for f in files:
            stem = f.removesuffix(".py").removesuffix("/*").replace("/", ".")
            if dotted.startswith(stem + ".") or dotted == stem:
                return module
    return "other"


def _source_file(name):
    """``minicnn.nn.conv.xǁConv2dǁforward__mutmut_3`` -> ``minicnn/nn/conv.py``."""
    return name.split("__mutmut_")[0].rsplit(".x", 1)[0].replace(".", "/") + ".py"


def _table(results, equivalent, key=None):
    """Per module (or per ``key(name)``): mutants, killed, equivalent, gpu-only, survived, no tests, not run; and the
    unjustified survivors."""
    table, unjustified = {}, []
    for name, status in results.items():
        module = (key or _module_of)(name)
        row = table.setdefault(module, {"mutants": 0, "killed": 0, "equivalent": 0, "gpu-only": 0, "rounding-only": 0, "survived": 0,
                                        "no tests": 0, "not run": 0, "other": 0})
        row["mutants"] += 1
        if status in ("killed", "timeout", "caught by type check", "segfault"):
            row["killed"] += 1
        elif status in ("survived", "no tests") and name in equivalent:
            row[equivalent[name]] += 1
        elif status in ("survived", "no tests", "not run"):
            row[status] += 1
            if status != "not run":
                unjustified.append((name, status))
        else:
            row["other"] += 1
    for row in table.values():
        row["justified"] = sum(row[kind] for kind in KINDS)
        row["unjustified"] = row["survived"] + row["no tests"]
        row["run"] = row["killed"] + row["justified"] + row["unjustified"]
        row["killed_share"] = round(row["killed"] / row["run"], 4) if row["run"] else None
        row["score"] = round((row["killed"] + row["justified"]) / row["run"], 4) if row["run"] else None
    return table, unjustified


def _percent(share):
    return "-" if share is None else f"{share:.1%}"


def report(workdir, as_json=None, write=False):
    results, equivalent = _results(workdir), _equivalents()
    table, unjustified = _table(results, equivalent)
    print(f"{'module':<15} {'mutants':>7} {'run':>5} {'killed':>7} {'equiv.':>7} {'gpu-only':>8} {'rounding':>8} {'survived':>8} "
          f"{'no tests':>8} {'not run':>7} {'killed':>7} {'score':>7}")
    for module, row in sorted(table.items()):
        print(f"{module:<15} {row['mutants']:>7} {row['run']:>5} {row['killed']:>7} {row['equivalent']:>7} "
              f"{row['gpu-only']:>8} {row['rounding-only']:>8} {row['survived']:>8} {row['no tests']:>8} {row['not run']:>7} "
              f"{_percent(row['killed_share']):>7} {_percent(row['score']):>7}")
    print("run: mutants with a verdict; killed: killed / run; score: (killed + justified) / run, justified = listed in "
          "tools/mutation_equivalent/<module>.toml")
    if unjustified:
        print("\nsurvivors without a killing test or a reason in tools/mutation_equivalent/<module>.toml:")
        for name, status in unjustified:
            print(f"  {name}  ({status})")
    # A listed name that is not a survivor of a module that was run: killed since, or renamed by a code change.
    stale = sorted(n for n in equivalent if _module_of(n) in table and results.get(n) not in ("survived", "no tests", "not run"))
    if stale:
        print("\nlisted in tools/mutation_equivalent/<module>.toml but not a survivor of this run (remove them):", ", ".join(stale))
    # a package (nn/) file by file: how far a run in chunks got, and where the survivors are
    files = {module: _table({n: s for n, s in results.items() if _module_of(n) == module}, equivalent, _source_file)[0]
             for module in table if len(MODULES[module]) > 1 or MODULES[module][0].endswith("/*")}
    for module, rows in files.items():
        print(f"\n{module}, file by file:")
        for name, row in sorted(rows.items()):
            print(f"  {name:<28} {row['mutants']:>5} mutants, {row['run']:>5} run, {row['killed']:>5} killed, "
                  f"{row['justified']:>4} justified, {row['unjustified']:>4} unjustified, score {_percent(row['score'])}")
    if as_json:
        Path(as_json).write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if write:
        _write_scores(workdir, table, files)
        for module in table:
            if module in MODULES and save_verdicts(module, workdir):
                print(f"wrote {RESULTS.relative_to(ROOT)}/{module}.json")
    return 1 if stale else 0


_COLUMNS = ("mutants", "run", "not run", "killed", "justified", "equivalent", "gpu-only", "rounding-only", "unjustified",
            "killed_share",
            "score")


def _write_scores(workdir, table, files=None):
    """``tools/mutation_scores.json``: the table, each module with the commit and date it was measured at (and, for a
    package, each file's row). Modules not in this ``workdir`` keep the record already there (another workdir)."""
    import mutmut

    modules = json.loads(SCORES.read_text(encoding="utf-8"))["modules"] if SCORES.is_file() else {}
    for module, row in sorted(table.items()):
        measured_file = Path(workdir) / module / "measured.json"
        measured = json.loads(measured_file.read_text(encoding="utf-8")) if measured_file.is_file() else {}
        modules[module] = {**{k: row[k] for k in _COLUMNS}, **measured}
        if files and module in files:
            modules[module]["files"] = {name: {k: r[k] for k in _COLUMNS} for name, r in sorted(files[module].items())}
    record = {"tool": f"mutmut {mutmut.__version__}", "machine": _machine(),
              "score": "(killed + justified) / run; justified = listed in tools/mutation_equivalent/<module>.toml",
              "modules": dict(sorted(modules.items()))}
    SCORES.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {SCORES.relative_to(ROOT)}")


def _machine():
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU") if Path("/proc/cpuinfo").is_file() else "unknown CPU"
    return f"{model}, {os.cpu_count()} cores"


def show(workdir, module):
    """The diff of every survivor of ``module`` not listed as equivalent (what a new test must kill)."""
    results, equivalent = _results(workdir), _equivalents()
    for name, status in results.items():
        if status in ("survived", "no tests") and name not in equivalent and _module_of(name) == module:
            diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=Path(workdir) / module,
                                  capture_output=True, text=True).stdout
            changed = [line for line in diff.splitlines() if line[:1] in "-+" and line[:3] not in ("---", "+++")]
            print(f"{name} ({status})")
            print("\n".join("    " + line for line in changed))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="mutate one module and run its tests on every mutant")
    r.add_argument("module", choices=sorted(MODULES))
    r.add_argument("--minutes", type=float, help="stop after this many minutes (the next run continues)")
    r.add_argument("--children", type=int, default=2, help="parallel mutants (default 2)")
    r.add_argument("--retry", action="store_true",
                   help="run only the module's survivors not justified again (after new tests)")
    r.add_argument("--first", nargs="+", metavar="TESTFILE",
                   help="run the mutants without a verdict against these test files first (tests/test_mutants_*.py): "
                        "the ones they kill are done, only the rest run against the whole suite")
    r.add_argument("--only", nargs="+", metavar="FILE",
                   help="run only the mutants of these files of a package module (e.g. nn: module.py conv.py)")
    rep = sub.add_parser("report", help="score per module and the survivors not justified")
    rep.add_argument("--json", help="also write the table as JSON to this file")
    rep.add_argument("--write", action="store_true", help="record the table in tools/mutation_scores.json and every verdict in tools/mutation_results/")
    sh = sub.add_parser("show", help="the diffs of a module's survivors not justified")
    sh.add_argument("module", choices=sorted(MODULES))
    for p in (r, rep, sh):
        p.add_argument("--workdir", default="/tmp/minicnn-mutation", help="where the copy and mutmut's results live")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.module, args.workdir, args.minutes, args.children, args.retry, args.only, args.first)
    if args.command == "show":
        return show(args.workdir, args.module)
    return report(args.workdir, args.json, args.write)


if __name__ == "__main__":
    sys.exit(main())
