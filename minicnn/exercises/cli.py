"""``minicnn exercises list | start DIR | check DIR [NAME]``: the graded exercises from the command line."""

from __future__ import annotations

import argparse

from . import EXERCISES, format_result, iter_check, start


def add_parser(subparsers):
    p = subparsers.add_parser(
        "exercises",
        help="graded exercises: write the reference functions yourself, the spec suite grades them",
        description=(
            "Graded exercises, one per reference function of the course (output size, conv2d and its gradients, "
            "pooling, softmax cross-entropy, SGD with momentum, LeNet-5, a residual block) and a last one that "
            "trains LeNet-5 on your own kernels.\n\n"
            "examples:\n  minicnn exercises list\n  minicnn exercises start mywork\n"
            "  minicnn exercises check mywork conv2d\n  minicnn exercises check mywork"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the exercises and the slide of each")
    begin = actions.add_parser("start", help="write DIR/student.py: signatures, docstrings, NotImplementedError bodies")
    begin.add_argument("dir", help="folder for your work (created if needed)")
    grade = actions.add_parser("check", help="grade DIR/student.py: every exercise, or NAME only")
    grade.add_argument("dir", help="the folder given to `start`")
    grade.add_argument("name", nargs="?", help="one exercise (see `minicnn exercises list`)")
    return p


def run(args):
    if args.action == "list":
        for number, exercise in enumerate(EXERCISES, 1):
            print(f"{number:2d}. {exercise.name:<28} {exercise.title}  [{exercise.slide}]")
        return 0
    if args.action == "start":
        path = start(args.dir)
        print(f"wrote {path}: fill in the functions, then run `minicnn exercises check {args.dir}`")
        return 0
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        raise RuntimeError("`minicnn exercises check` needs Hypothesis: pip install 'minicnn[classroom]'") from None
    results = []
    for result in iter_check(args.dir, args.name):
        print(format_result(result), flush=True)
        results.append(result)
    passed = sum(r.status == "passed" for r in results)
    print(f"{passed}/{len(results)} passed")
    return 0 if passed == len(results) else 1
