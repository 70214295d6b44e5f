"""The `trit-rnn` command line."""

import argparse
import json
import sys
from pathlib import Path


def _demo(args) -> int:
    from .demo import run_demo

    result = run_demo(
        steps=args.steps,
        seq_len=args.seq_len,
        hidden=args.hidden,
        batch=args.batch,
        lr=args.lr,
        nonlinearity=args.nonlinearity,
        parametrization=args.parametrization,
        backend=args.backend,
        seed=args.seed,
        log_every=max(1, args.steps // 10),
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"adding problem T={result['seq_len']}, OrthogonalRNN H={result['hidden']}: "
            f"train MSE {result['first_mse']:.4f} -> {result['final_train_mse']:.4f}, "
            f"test MSE {result['test_mse']:.4f} (baseline {result['baseline_mse']:.4f}); "
            f"{result['steps']} steps in {result['seconds']:.1f} s, {result['tokens_per_s']:,.0f} tokens/s"
        )
    return 0


def _resources(args) -> int:
    from .perf import resources_report

    configs = None if args.all_configs else (args.config or resources_report.DEFAULT_CONFIGS)
    records = resources_report.collect(
        args.target, args.hidden, args.dtype, configs, args.batch, records_file=args.records,
        compile_over_budget=args.compile_over_budget, lengths=args.lengths,
    )  # fmt: skip
    if args.chart:
        for path in resources_report.write_chart(records, args.target, args.out):
            print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    print(resources_report.format_resources(records, args.target, args.batch))
    return 0


def _autotune(args) -> int:
    from .perf import autotune_report

    try:
        report = autotune_report.autotune_cell(
            args.cell, args.hidden, batch=args.batch, dtype=args.dtype, target=args.target,
            configs=args.config, gpu=autotune_report.detect_gpu(), seq_len=args.seq_len,
        )  # fmt: skip
    except ValueError as exc:
        print(f"trit-rnn autotune: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=1) if args.json else autotune_report.format_report(report))
    return 0


def _bench(args) -> int:
    from .perf.bench import run_bench
    from .perf.device import detect
    from .perf.sweep import default_spec

    device = detect(args.device)
    run_bench(
        bench_spec(args, default_spec(device, args.cells)), device, args.out, progress=not args.no_progress
    )
    return 0


def bench_spec(args, spec):
    """The default sweep `spec` with the command line's choices. The per-call time budget and the
    few rounds are the default sweep's (it must fit the main job's minutes): where the sequence
    lengths or hidden sizes are given, every contestant runs at every one of them unless
    --max-call-seconds is given too, in at least SweepSpec's default rounds unless --rounds is."""
    from .perf.sweep import SweepSpec

    fields = ("seq_lens", "hidden_sizes", "base_seq_len", "base_hidden", "batches", "dtypes", "modes", "rounds",
              "max_call_seconds")  # fmt: skip
    for field in fields:
        value = getattr(args, field)
        if value is not None:
            setattr(spec, field, value)
    if args.seq_lens is not None or args.hidden_sizes is not None:
        if args.max_call_seconds is None:
            spec.max_call_seconds = float("inf")
        if args.rounds is None:  # the default sweep's 3 rounds on a CPU are what fits its 5 minutes
            spec.rounds = max(spec.rounds, SweepSpec.rounds)
    spec.input_size = args.input_size
    return spec


def _plot(args) -> int:
    from .perf.charts import throughput_charts
    from .perf.results import read_csv

    for path in throughput_charts(read_csv(args.results), args.out or Path(args.results).parent):
        print(f"wrote {path}")
    return 0


def _profile(args) -> int:
    from .perf.charts import profile_chart
    from .perf.device import detect
    from .perf.profile import ProfileSpec, format_profile, run_profile

    device = detect(args.device)
    spec = ProfileSpec(args.cell, args.hidden, args.seq_len, batch=args.batch, input_size=args.input_size,
                       backend=args.backend, dtype=args.dtype, checkpoint_every=args.checkpoint_every,
                       rounds=args.rounds, recurrence_only=args.recurrence_only)  # fmt: skip
    records = run_profile(spec, device, trace=args.trace)
    scope = "_recurrence" if args.recurrence_only else ""
    chart = profile_chart(records, args.out / f"profile_{args.cell}{scope}_memory_vs_seq_len.png")
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    print(
        f"profile of {args.cell} on {device.type} ({device.name}); peak memory = {records[0]['memory_kind']}"
    )
    print(format_profile(records))
    print(f"wrote {chart}" + (f" and {args.trace}" if args.trace else ""))
    return 0


def _cell(text: str) -> str:
    names = _cells(text)
    if len(names) != 1:
        raise argparse.ArgumentTypeError(f"expected one cell name; got {text!r}")
    return names[0]


def _cells(text: str) -> list[str]:
    from . import registry

    try:
        return registry.parse_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_config(text: str):
    from .kernels.aot import parse_config

    return parse_config(text)


def _train(args) -> int:
    from .training.command import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trit-rnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train an OrthogonalRNN on the adding problem (the default main job)")
    demo.add_argument("--steps", type=int, default=800)
    demo.add_argument("--seq-len", type=int, default=20)
    demo.add_argument("--hidden", type=int, default=128)
    demo.add_argument("--batch", type=int, default=50)
    demo.add_argument("--lr", type=float, default=3e-3, help="Adam; the orthogonal parameters train at lr/10")
    demo.add_argument("--nonlinearity", default="tanh", choices=["tanh", "modrelu", "relu", "identity"])
    demo.add_argument("--parametrization", default="exp", choices=["exp", "cayley", "householder"])
    demo.add_argument("--backend", default="auto", choices=["auto", "torch", "triton"])
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    demo.set_defaults(func=_demo)

    bench = sub.add_parser(
        "bench",
        help="throughput of every registered cell and backend against its peers, over T and H (the main job)",
        description="Sweeps sequence length (at --base-hidden) and hidden size (at --base-seq-len), "
        "times every contestant side by side, prints a summary, writes OUT/throughput.csv and "
        "OUT/throughput_vs_seq_len.png, OUT/throughput_vs_hidden.png. Defaults depend on the device.",
    )
    bench.add_argument(
        "--cells", type=_cells, default=None, help="comma-separated registry names, or 'all' (default)"
    )
    bench.add_argument("--seq-len", dest="seq_lens", type=int, nargs="+", default=None)
    bench.add_argument("--hidden", dest="hidden_sizes", type=int, nargs="+", default=None)
    bench.add_argument("--base-seq-len", type=int, default=None, help="T of the sweep over hidden size")
    bench.add_argument("--base-hidden", type=int, default=None, help="H of the sweep over sequence length")
    bench.add_argument("--batch", dest="batches", type=int, nargs="+", default=None)
    bench.add_argument("--dtype", dest="dtypes", nargs="+", default=None,
                       choices=["float32", "float64", "bfloat16", "float16"])  # fmt: skip
    bench.add_argument("--mode", dest="modes", nargs="+", default=None, choices=["forward", "train"],
                       help="forward: inference; train: forward + backward")  # fmt: skip
    bench.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds per shape")
    bench.add_argument("--input-size", type=int, default=None, help="default: the hidden size")
    bench.add_argument("--max-call-seconds", type=float, default=None,
                       help="leave out a contestant at shapes where one call takes longer (default sweep: 1.5 on a "
                            "CPU; none where --seq-len or --hidden is given)")  # fmt: skip
    bench.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    bench.add_argument("--out", type=Path, default=Path("plots"), help="directory for the CSV and charts")
    bench.add_argument("--no-progress", action="store_true")
    bench.set_defaults(func=_bench)

    plot = sub.add_parser("plot", help="redraw the throughput charts from a bench CSV")
    plot.add_argument("results", type=Path, help="a throughput.csv written by `trit-rnn bench`")
    plot.add_argument("--out", type=Path, default=None, help="default: the CSV's directory")
    plot.set_defaults(func=_plot)

    prof = sub.add_parser(
        "profile",
        help="long-sequence training: seconds per step and peak memory, with and without checkpointing",
    )
    prof.add_argument("--cell", type=_cell, default="orthogonal")
    prof.add_argument("--hidden", type=int, default=128)
    prof.add_argument("--seq-len", type=int, nargs="+", default=[100, 300, 1000, 3000, 10000])
    prof.add_argument("--batch", type=int, default=32)
    prof.add_argument("--input-size", type=int, default=2)
    prof.add_argument("--backend", default=None, help="default: the cell's first backend that runs here")
    prof.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16", "float16"])
    prof.add_argument("--checkpoint-every", type=int, default=None, help="K; default ceil(sqrt(T))")
    prof.add_argument("--rounds", type=int, default=5, help="at least this many; more for short T")
    prof.add_argument("--device", choices=["cpu", "cuda"], default=None)
    prof.add_argument(
        "--trace", type=Path, default=None, help="write a torch.profiler trace (JSON) of the longest T"
    )
    prof.add_argument("--out", type=Path, default=Path("plots"), help="directory for the memory chart")
    prof.add_argument("--recurrence-only", action="store_true",
                      help="time the recurrence op with the matrix materialised once, not the whole module")  # fmt: skip
    prof.add_argument("--json", action="store_true")
    prof.set_defaults(func=_profile)

    res = sub.add_parser(
        "resources", help="compile the kernels for a GPU target and report registers/spills/smem"
    )
    res.add_argument("--target", default="sm_90", choices=["sm_90", "sm_80"])
    res.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 192, 256, 320, 384])
    res.add_argument("--dtype", nargs="+", default=["float32", "bfloat16", "complex64"])
    res.add_argument(
        "--config",
        action="append",
        type=_parse_config,
        default=None,
        help="BLOCK_B,num_warps,num_stages (repeatable); default: 16,8,1 and 32,8,1",
    )
    res.add_argument(
        "--all-configs", action="store_true", help="every autotune candidate (several times slower)"
    )
    res.add_argument("--compile-over-budget", action="store_true",
                     help="also compile configs whose W alone exceeds the shared limit (minutes each)")  # fmt: skip
    res.add_argument("--lengths", action="store_true",
                     help="the variable-length variants (HAS_LENGTHS: ragged batches, names +lengths)")  # fmt: skip
    res.add_argument("--batch", type=int, default=16, help="batch size of the GPU time model column")
    res.add_argument("--chart", action="store_true", help="write the max-hidden-size chart and its records")
    res.add_argument(
        "--out", type=Path, default=Path("plots"), help="directory for --chart (default ./plots)"
    )
    res.add_argument(
        "--records", type=Path, default=None, help="read records from this JSON instead of compiling"
    )
    res.add_argument("--json", action="store_true")
    res.set_defaults(func=_resources)

    tune = sub.add_parser(
        "autotune",
        help="show (and on a GPU, time and cache) the autotune decision for a cell",
        description="Each candidate config of the cell's kernel family: static budget for --target, "
        "ptxas resources, the GPU time model (an estimate), and the choice. On a GPU every surviving "
        "config is timed with triton.testing.do_bench and the fastest is written to the autotune cache.",
    )
    tune.add_argument("--cell", required=True, help="a registry name, e.g. orthogonal")
    tune.add_argument("--hidden", type=int, required=True)
    tune.add_argument("--batch", type=int, default=16)
    tune.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    tune.add_argument("--target", default="sm_90", choices=["sm_90", "sm_80"])
    tune.add_argument("--config", action="append", type=_parse_config, default=None,
                      help="BLOCK_B,num_warps,num_stages (repeatable); default: every candidate")  # fmt: skip
    tune.add_argument("--seq-len", type=int, default=256, help="T of the GPU timing runs")
    tune.add_argument("--json", action="store_true")
    tune.set_defaults(func=_autotune)

    from .training.command import DESCRIPTION, add_arguments

    train = sub.add_parser("train", help="train cells on a benchmark task (copying, adding, denoise, "
                           "parenthesis, digits, pdigits); learning curves and checkpoints", description=DESCRIPTION)  # fmt: skip
    add_arguments(train)
    train.set_defaults(func=_train)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
