"""The ``minicnn`` command: train LeNet-5, evaluate and use the result, inspect models and backends.

Run ``minicnn --help`` or ``minicnn <command> --help``; every command's help
says what it does and shows an example. ``main(argv)`` returns the exit code
(0 success, 2 a usage or input error, reported in one line on stderr, 1 an
internal error, also in one line; set ``MINICNN_DEBUG=1`` to see the full
traceback instead).

Other modules can add commands: a module ``minicnn.bench`` that defines
``add_parser(subparsers)`` and ``run(args)`` becomes ``minicnn bench``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ["main", "build_parser", "OPTIONAL_COMMANDS"]

# Commands that live in their own module: name -> module defining add_parser(subparsers) and run(args).
OPTIONAL_COMMANDS = {"bench": "minicnn.bench", "spec": "minicnn.spec_map", "exercises": "minicnn.exercises.cli",
                     "explore": "minicnn.explore"}

_PROG = "minicnn"
_LENET_INPUT = (1, 32, 32)  # deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red": a 32x32 single-plane input
_DESCRIPTION = """\
minicnn: convolutional networks as on the slides, from formulas to a trained LeNet-5.

Start with `minicnn train`: it trains LeNet-5 on the 4,000 bundled MNIST
digits, checks it on 1,000 others (about 98%), and saves the model, the
metrics and the figures in a run directory.
"""
_EPILOG = """\
examples:
  minicnn train --out runs/first             # train, save model, metrics, plots
  minicnn eval runs/first/model.npz          # accuracy on the test digits
  minicnn predict digit.png --model runs/first
  minicnn summary lenet5                     # layers, shapes, parameters (61,706)
  minicnn backends                           # which kernels run here
  minicnn explore runs/first                 # an HTML page: feature maps, filters, mistakes
  minicnn exercises start mywork             # graded exercises: write the functions yourself
  minicnn export runs/first model.onnx       # the trained network as ONNX (pip install minicnn[onnx])
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-wrapped descriptions and examples as written."""


class CommandError(Exception):
    """A problem with what the user asked for, reported as one line (exit code 2)."""


# --------------------------------------------------------------------------- argument types
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _float(minimum, maximum=None, *, open_min=False, open_max=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        low_ok = value > minimum if open_min else value >= minimum
        high_ok = maximum is None or (value < maximum if open_max else value <= maximum)
        if not (low_ok and high_ok and value == value):
            low = "(" if open_min else "["
            high = ("inf)" if maximum is None else f"{maximum}{')' if open_max else ']'}")
            raise argparse.ArgumentTypeError(f"expected a number in {low}{minimum}, {high}, got {text}")
        return value

    return parse


# --------------------------------------------------------------------------- parser
def build_parser():
    """The ``argparse`` parser of ``minicnn`` with every command (optional ones included when they import)."""
    from . import __version__

    parser = argparse.ArgumentParser(prog=_PROG, description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    commands.required = True
    for add in (_add_train, _add_eval, _add_predict, _add_summary, _add_backends, _add_export, _add_import):
        add(commands)
    _add_optional_commands(commands)
    return parser


def _add_train(commands):
    from .train import TrainConfig

    defaults = TrainConfig(out=Path("runs/<timestamp>"))
    train = commands.add_parser(
        "train",
        help="train LeNet-5 and save model, metrics and plots",
        formatter_class=_Formatter,
        description="""\
Train LeNet-5 with mini-batch SGD and momentum on the softmax cross-entropy,
evaluating on the test split after every epoch. The run directory (--out)
receives model.npz, metrics.json, checkpoint.npz (after every epoch; continue
an interrupted run with --resume) and the figures curves.png,
filters_c1.png, feature_maps.png and confusion.png.

Defaults reach about 98% on the bundled mnist-5k digits in 20 epochs.""",
        epilog="""\
examples:
  minicnn train --out runs/first
  minicnn train --dataset fashion-mnist --epochs 15 --out runs/fashion
  minicnn train --activation tanh --pool avg --out runs/classic  # closer to LeCun 1998
  minicnn train --dataset folder:~/crops --out runs/plates       # ~/crops/<digit>/*.png
  minicnn train --out runs/first --resume                        # continue after Ctrl-C""",
    )
    _add_train_data_options(train, defaults)
    _add_train_run_options(train, defaults)
    train.set_defaults(handler=_cmd_train)


def _add_train_data_options(train, defaults):
    opt = train.add_argument_group("data")
    opt.add_argument("--dataset", default=argparse.SUPPRESS, metavar="NAME",
                     help=f"mnist-5k (bundled), mnist, fashion-mnist, plates or folder:PATH (default: {defaults.dataset})")
    opt.add_argument("--data-root", dest="data_root", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                     help="where the data set's files are (mnist: download cache; fashion-mnist: the IDX files)")
    opt.add_argument("--size", type=_positive_int, default=argparse.SUPPRESS, metavar="N",
                     help="training images: how many plate digits to generate, or a random subset of another set")
    opt.add_argument("--test-size", dest="test_size", type=_positive_int, default=argparse.SUPPRESS, metavar="N",
                     help="the same for the test split")
    opt.add_argument("--augment", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                     help="random shifts of up to 2 px and rotations of up to 10 degrees for every training image "
                          "(default: on, except for fashion-mnist)")
    opt = train.add_argument_group("network")
    opt.add_argument("--activation", choices=("relu", "tanh", "sigmoid"), default=argparse.SUPPRESS,
                     help=f"activation after every layer but the last (default: {defaults.activation})")
    opt.add_argument("--pool", choices=("max", "avg"), default=argparse.SUPPRESS,
                     help=f"S2 and S4 pooling (default: {defaults.pool})")


def _add_train_run_options(train, defaults):
    from .backends import BACKEND_NAMES
    from .train import SCHEDULES

    opt = train.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=_positive_int, default=argparse.SUPPRESS, metavar="N",
                     help=f"passes over the training set (default: {defaults.epochs})")
    opt.add_argument("--batch-size", dest="batch_size", type=_positive_int, default=argparse.SUPPRESS, metavar="N",
                     help=f"images per SGD step (default: {defaults.batch_size})")
    opt.add_argument("--lr", type=_float(0, open_min=True), default=argparse.SUPPRESS, metavar="ETA",
                     help=f"learning rate η at the first epoch (default: {defaults.lr})")
    opt.add_argument("--momentum", type=_float(0, 1, open_max=True), default=argparse.SUPPRESS, metavar="GAMMA",
                     help=f"momentum γ in v := γv + η∇J (default: {defaults.momentum})")
    opt.add_argument("--weight-decay", dest="weight_decay", type=_float(0), default=argparse.SUPPRESS, metavar="L",
                     help=f"L2 penalty λ added to every gradient as λθ (default: {defaults.weight_decay})")
    opt.add_argument("--schedule", choices=SCHEDULES, default=argparse.SUPPRESS,
                     help=f"how η falls each epoch: cosine to 0, step (x0.1 every third of the run) or constant (default: {defaults.schedule})")
    opt.add_argument("--seed", type=_non_negative_int, default=argparse.SUPPRESS,
                     help=f"fixes the initial weights, the order of the batches and the augmentation (default: {defaults.seed})")
    opt = train.add_argument_group("run")
    opt.add_argument("--backend", choices=BACKEND_NAMES, default=argparse.SUPPRESS,
                     help="kernels to compute with (default: the fastest available; see `minicnn backends`)")
    opt.add_argument("--out", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                     help="run directory (default: runs/<timestamp>)")
    opt.add_argument("--resume", action="store_true",
                     help="continue the run in --out (default: the newest in runs/) from its last checkpoint")
    opt.add_argument("--overwrite", action="store_true", help="reuse an --out that already holds a run")
    opt.add_argument("--no-plots", dest="plots", action="store_false", default=argparse.SUPPRESS,
                     help="skip the figures at the end")
    opt.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_eval(commands):
    from .backends import BACKEND_NAMES

    evaluate = commands.add_parser(
        "eval",
        help="accuracy of a saved model on a test split",
        formatter_class=_Formatter,
        description="Load a trained model (model.npz, or the run directory holding it) and print its loss and\n"
        "accuracy on the test split of its own data set, or of --dataset.",
        epilog="examples:\n  minicnn eval runs/first/model.npz\n  minicnn eval runs/first --dataset mnist   # full MNIST test set",
    )
    evaluate.add_argument("model", type=Path, metavar="MODEL", help="model.npz written by `minicnn train`, or its run directory")
    evaluate.add_argument("--dataset", metavar="NAME", help="data set to test on (default: the one the model was trained on)")
    evaluate.add_argument("--data-root", dest="data_root", type=Path, metavar="DIR", help="where the data set's files are")
    evaluate.add_argument("--split", choices=("test", "train"), default="test", help="which split (default: test)")
    evaluate.add_argument("--size", type=_positive_int, metavar="N", help="evaluate on a random subset of N images")
    evaluate.add_argument("--batch-size", dest="batch_size", type=_positive_int, default=500, metavar="N",
                          help="images per forward pass (default: 500)")
    evaluate.add_argument("--backend", choices=BACKEND_NAMES, help="kernels to compute with")
    evaluate.set_defaults(handler=_cmd_eval)


def _add_predict(commands):
    from .backends import BACKEND_NAMES

    predict = commands.add_parser(
        "predict",
        help="classify digit images with a saved model",
        formatter_class=_Formatter,
        description="Classify image files (PNG, JPEG, ...) with a trained model. Each image is turned into a\n"
        "28x28 white-on-black digit like MNIST's (grey, resized, inverted if the background is light),\n"
        "then the class and the 10 softmax probabilities are printed.",
        epilog="examples:\n  minicnn predict digit.png --model runs/first\n  minicnn predict crops/*.png --model runs/first/model.npz",
    )
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image file(s) to classify")
    predict.add_argument("--model", type=Path, required=True, metavar="MODEL",
                         help="model.npz written by `minicnn train`, or its run directory")
    predict.add_argument("--backend", choices=BACKEND_NAMES, help="kernels to compute with")
    predict.set_defaults(handler=_cmd_predict)


def _add_summary(commands):
    summary = commands.add_parser(
        "summary",
        help="layers, output shapes, parameters and MACs of a model",
        formatter_class=_Formatter,
        description="Print a model's table: every layer with its output shape, parameter count and\n"
        "multiply-accumulates for one input image, from the formulas in minicnn.shapes.\n"
        "MODEL is a builder in minicnn.models (lenet5, alexnet, vgg16, resnet50, ...) or a saved model.npz.",
        epilog="examples:\n  minicnn summary lenet5\n  minicnn summary vgg16\n  minicnn summary runs/first/model.npz\n"
        "  minicnn summary lenet5 --input-shape 1 32 32",
    )
    summary.add_argument("model", nargs="?", default="lenet5", metavar="MODEL", help="model name or model.npz (default: lenet5)")
    summary.add_argument("--input-shape", dest="input_shape", type=_positive_int, nargs=3, metavar=("C", "H", "W"),
                         help="one input image, channels first (default: the model's own, 1 32 32 for lenet5)")
    summary.set_defaults(handler=_cmd_summary)


def _add_backends(commands):
    backends = commands.add_parser(
        "backends",
        help="list the compute backends and why any is unavailable",
        formatter_class=_Formatter,
        description="List the backends (numpy: the readable reference; cython: compiled CPU kernels;\n"
        "cupy: CUDA kernels on a GPU), mark the default, and say why any cannot load here.\n\n"
        "With --explain X_SHAPE W_SHAPE: which CPU kernel path computes that convolution's forward\n"
        "pass, input gradient and weight gradient on this machine, and why each other path does or\n"
        "does not take it (the first time a layer is seen, the paths that take it are timed; set\n"
        "MINICNN_AUTOTUNE=0 for the static table).",
        epilog="examples:\n  minicnn backends\n  minicnn backends --explain 64x6x14x14 16x6x5x5\n"
        "  minicnn backends --explain 32x64x56x56 64x64x3x3 --padding 1",
    )
    backends.add_argument("--explain", nargs=2, metavar=("X_SHAPE", "W_SHAPE"),
                          help="input N x C_in x H x W and filters C_out x C_in/groups x F_H x F_W, e.g. 64x6x14x14 16x6x5x5")
    backends.add_argument("--stride", type=_positive_int, default=1, help="with --explain (default 1)")
    backends.add_argument("--padding", type=_non_negative_int, default=0, help="with --explain (default 0)")
    backends.add_argument("--dilation", type=_positive_int, default=1, help="with --explain (default 1)")
    backends.add_argument("--groups", type=_positive_int, default=1, help="with --explain (default 1)")
    backends.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="with --explain")
    backends.set_defaults(handler=_cmd_backends)


def _add_export(commands):
    export = commands.add_parser(
        "export",
        help="write a saved model as an ONNX file (needs minicnn[onnx])",
        formatter_class=_Formatter,
        description="Write a trained or imported model (model.npz, or the run directory holding it) as an ONNX\n"
        "file (opset 17, IR version 8) that onnxruntime, PyTorch and other runtimes can run. The batch\n"
        "axis is left free; the image size is the model's own, or --input-shape. Needs the onnx\n"
        "package: pip install minicnn[onnx].",
        epilog="examples:\n  minicnn export runs/first model.onnx\n"
        "  minicnn export imported.npz again.onnx --input-shape 3 64 64",
    )
    export.add_argument("model", type=Path, metavar="MODEL", help="model.npz, or a run directory holding one")
    export.add_argument("out", type=Path, metavar="OUT.onnx", help="the ONNX file to write")
    export.add_argument("--input-shape", dest="input_shape", type=_positive_int, nargs=3, metavar=("C", "H", "W"),
                        help="one input image, channels first (default: the model's own, 1 32 32 for lenet5)")
    export.set_defaults(handler=_cmd_export)


def _add_import(commands):
    imported = commands.add_parser(
        "import",
        help="read an ONNX file into a minicnn model.npz (needs minicnn[onnx])",
        formatter_class=_Formatter,
        description="Read an ONNX model made of the operators minicnn has (Conv, MaxPool, Gemm, Relu,\n"
        "BatchNormalization, Concat, Add, ...: LeNet-, VGG-, ResNet-, MobileNet-style networks) and\n"
        "write it as a model.npz that `minicnn eval`, `predict`, `summary` and `export` use. An operator\n"
        "or attribute minicnn cannot compute is an error naming the node. Needs pip install minicnn[onnx].",
        epilog="examples:\n  minicnn import model.onnx imported.npz\n"
        "  minicnn import resnet.onnx resnet.npz --input-shape 3 224 224   # a file with symbolic sizes",
    )
    imported.add_argument("onnx_file", type=Path, metavar="MODEL.onnx", help="the ONNX file to read")
    imported.add_argument("out", type=Path, metavar="OUT.npz", help="the model.npz to write")
    imported.add_argument("--input-shape", dest="input_shape", type=_positive_int, nargs=3, metavar=("C", "H", "W"),
                          help="one input image, for a file whose input sizes are symbolic")
    imported.add_argument("--dataset", default="mnist-5k", metavar="NAME",
                          help="the data set `minicnn eval` tests it on by default (default: mnist-5k)")
    imported.set_defaults(handler=_cmd_import)


def _add_optional_commands(commands):
    """Register commands whose code lives in other modules (see ``OPTIONAL_COMMANDS``).

    A missing module adds nothing; one that fails to import still gets a
    command, which explains the failure when run.
    """
    for name, module_name in OPTIONAL_COMMANDS.items():
        try:
            if importlib.util.find_spec(module_name) is None:
                continue
            module = importlib.import_module(module_name)
        except Exception as exc:  # a broken optional module must not break the other commands
            reason = f"{type(exc).__name__}: {exc}"
            broken = commands.add_parser(name, help=f"(unavailable: {reason})", description=f"unavailable: {reason}")

            def unavailable(args, name=name, reason=reason):
                raise CommandError(f"`minicnn {name}` is unavailable here ({reason})")

            broken.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            broken.set_defaults(handler=unavailable)
            continue
        sub = module.add_parser(commands) or commands.choices.get(name)
        if sub is None:
            raise RuntimeError(f"{module_name}.add_parser() did not add a {name!r} command")
        if sub.get_default("handler") is None:
            sub.set_defaults(handler=module.run)


# --------------------------------------------------------------------------- commands
def _cmd_train(args):
    from .train import CHECKPOINT_FILE, TrainConfig, load_checkpoint, train

    given = {
        name: getattr(args, name)
        for name in ("dataset", "data_root", "size", "test_size", "augment", "activation", "pool", "epochs", "batch_size",
                     "lr", "momentum", "weight_decay", "schedule", "seed", "backend", "out", "plots")
        if hasattr(args, name)
    }  # fmt: skip
    if args.resume:
        out = given.get("out") or _newest_run(Path("runs"), CHECKPOINT_FILE)
        checkpoint = load_checkpoint(out / CHECKPOINT_FILE)
        config = TrainConfig.from_dict({**checkpoint["config"], "out": out, "backend": None, **given})
        print(f"resuming {out} after epoch {checkpoint['epoch']} of {config.epochs}")
    else:
        config = TrainConfig(**given)
        print(f"training {config.model} ({config.activation}, {config.pool} pooling) on {config.dataset}; run directory {config.out}")
    metrics = train(config, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    data = metrics["dataset"]
    print(
        f"test accuracy {100 * metrics['test_accuracy']:.2f}% on {data['test_size']:,} {data['name']} test images after "
        f"{len(metrics['epochs'])} epochs ({metrics['time_s']:.1f} s, backend {metrics['backend']})"
    )
    saved_files = ["model.npz", "metrics.json", "checkpoint.npz", *metrics.get("plots", [])]
    print(f"saved in {config.out}: {', '.join(saved_files)}")
    return 0


def _newest_run(root, marker):
    runs = sorted((p for p in root.glob("*") if (p / marker).is_file()), key=lambda p: (p / marker).stat().st_mtime)
    if not runs:
        raise CommandError(f"--resume without --out: no run with a {marker} under {root}/; pass --out DIR")
    return runs[-1]


def _backend_context(name):
    import contextlib

    from .backends import use_backend

    return use_backend(name) if name else contextlib.nullcontext()


def _cmd_eval(args):
    from .data import load_dataset, to_network_input
    from .train import evaluate, load_model, model_info

    info = model_info(_existing(args.model, "MODEL"))
    config = info.get("config", {})
    dataset = args.dataset or info["dataset"]
    same = dataset == info["dataset"]
    root = args.data_root if args.data_root is not None else (config.get("data_root") if same else None)
    # "plates" and "folder:" splits depend on the seed: use the training run's, so its test split is the held-out one.
    seed = int(config.get("seed", 0)) if same else 0
    with _backend_context(args.backend):
        net = load_model(args.model)
        images, labels = load_dataset(dataset, args.split, root=root, size=args.size, seed=seed)
        result = evaluate(net, to_network_input(images), labels, args.batch_size)
    print(f"{dataset} {args.split} ({len(labels):,} images): accuracy {100 * result.accuracy:.2f}%, loss {result.loss:.4f}")
    return 0


def _cmd_predict(args):
    from .data import load_images
    from .train import load_model, model_info, predict

    names = model_info(_existing(args.model, "--model")).get("class_names") or [str(k) for k in range(10)]
    for image in args.images:
        _existing(image, "IMAGE")
    with _backend_context(args.backend):
        net = load_model(args.model)
        for image in args.images:
            probabilities = predict(net, load_images(image))
            best = int(probabilities.argmax())
            print(f"{image}: {names[best]} (probability {probabilities[best]:.4f})")
            print("  " + "  ".join(f"{names[k]}: {p:.4f}" for k, p in enumerate(probabilities)))
    return 0


def _cmd_summary(args):
    from .train import build_model, load_model, model_names

    target = Path(args.model)
    if target.suffix == ".npz" or target.is_dir():
        net, title = load_model(_existing(target, "MODEL")), f"{target}"
    else:
        if args.model not in model_names():
            raise CommandError(f"unknown model {args.model!r}; choose one of {', '.join(model_names())} or give a model.npz")
        net, title = build_model(args.model), args.model
    shape = tuple(args.input_shape or getattr(net, "input_shape", None) or _LENET_INPUT)
    print(f"{title}, input {'x'.join(map(str, shape))}")
    print(net.summary(shape))
    return 0


def _cmd_backends(args):
    from . import kernels_not_built_hint
    from .backends import BACKEND_NAMES, available_backends, current_backend_name, unavailable_reason

    if args.explain:
        from .functional import explain_conv2d

        if "cython" not in available_backends():
            raise CommandError(f"--explain needs the cython backend, which is unavailable: {unavailable_reason('cython')}")
        print(explain_conv2d(*args.explain, stride=args.stride, padding=args.padding, dilation=args.dilation,
                             groups=args.groups, dtype=args.dtype))
        return 0

    available = available_backends()
    default = current_backend_name()
    for name in BACKEND_NAMES:
        if name in available:
            print(f"{name:<7} available{'  (default)' if name == default else ''}")
        else:
            reason = unavailable_reason(name)
            print(f"{name:<7} unavailable: {reason}")
            hint = kernels_not_built_hint(reason) if name == "cython" else None
            if hint is not None:
                print(f"{'':<7} fix: {hint}")
    return 0


def _cmd_export(args):
    from .onnx_io import export
    from .train import load_model

    net = load_model(_existing(args.model, "MODEL"))
    _writable_folder(args.out, "OUT.onnx")
    model = export(net, args.out, tuple(args.input_shape) if args.input_shape else None)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    print(f"wrote {args.out}: {len(model.graph.node)} ONNX nodes, opset {model.opset_import[0].version}, "
          f"IR version {model.ir_version}, input {'x'.join(str(d.dim_param or d.dim_value) for d in dims)}")
    return 0


def _cmd_import(args):
    from .graph_spec import build_graph
    from .io import GRAPH_MODEL, load_model, write_model
    from .onnx_io import load_spec

    _writable_folder(args.out, "OUT.npz")
    spec, weights = load_spec(_existing(args.onnx_file, "MODEL.onnx"), args.input_shape)
    net = build_graph(spec)
    net.load_state_dict(weights)
    write_model(args.out, net, model=GRAPH_MODEL, model_kwargs={}, dataset=args.dataset,
                extra={"graph": spec, "source": str(args.onnx_file)})
    net = load_model(args.out)  # what eval and export will read: check it rebuilds
    shape = "x".join(str(s) for s in net.input_shape)
    print(f"wrote {args.out}: {len(spec['nodes'])} layers, {net.num_parameters():,} parameters, input {shape}")
    return 0


def _writable_folder(path, what):
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise CommandError(f"{what}: the folder {folder} does not exist")


def _existing(path, what):
    path = Path(path)
    if not path.exists():
        raise CommandError(f"{what}: no such file or directory: {path}")
    return path


# --------------------------------------------------------------------------- entry point
def main(argv=None):
    """Run ``minicnn`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2, already reported by argparse)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    debug = os.environ.get("MINICNN_DEBUG", "") not in ("", "0")
    from .backends import keep_freed_memory

    keep_freed_memory()  # this process trains or times networks: reuse freed activations' memory
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        print(f"\n{_PROG} {args.command}: interrupted" + ("; continue with --resume" if args.command == "train" else ""),
              file=sys.stderr)  # fmt: skip
        return 130
    except (CommandError, ValueError, TypeError, OSError, RuntimeError, KeyError, ImportError) as exc:
        if debug:
            raise
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"{_PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        if debug:
            raise
        detail = f" ({exc})" if str(exc) else ""
        print(f"{_PROG} {args.command}: error: out of memory{detail}; try a smaller --size or --batch-size",
              file=sys.stderr)  # fmt: skip
        return 2
    except Exception as exc:  # a bug, not a bad input: still one line, and the way to the traceback
        if debug:
            raise
        print(f"{_PROG} {args.command}: internal error: {type(exc).__name__}: {exc} (this is a bug; rerun with "
              "MINICNN_DEBUG=1 for the traceback and report it)", file=sys.stderr)  # fmt: skip
        return 1
    return 0 if code is None else int(code)


if __name__ == "__main__":
    sys.exit(main())
