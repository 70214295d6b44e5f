"""The `trit-rnn` command line."""

import argparse
import json
import sys


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
    from .kernels.aot import collect_in_subprocess, format_table

    records = collect_in_subprocess(
        args.target, hidden_sizes=args.hidden, dtypes=args.dtype, configs=args.config
    )
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    print(f"static resources for {args.target}, compiled without a GPU (not timings)")
    print(format_table(records))
    return 0


def _parse_config(text: str):
    from .kernels.aot import parse_config

    return parse_config(text)


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

    res = sub.add_parser(
        "resources", help="compile the kernels for a GPU target and report registers/spills/smem"
    )
    res.add_argument("--target", default="sm_90", choices=["sm_90", "sm_80"])
    res.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256])
    res.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"])
    res.add_argument(
        "--config",
        action="append",
        type=_parse_config,
        default=None,
        help="BLOCK_B,num_warps,num_stages (repeatable); default: every autotune candidate",
    )
    res.add_argument("--json", action="store_true")
    res.set_defaults(func=_resources)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
