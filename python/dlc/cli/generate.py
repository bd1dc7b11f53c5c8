"""`dlc generate MODEL --params CKPT`: sample text from a character-level language model."""

from __future__ import annotations

import argparse
import sys

from .common import add_threads_argument, load_params, load_program


def cmd_generate(args: argparse.Namespace) -> int:
    from ..text import sample
    program = load_program(args)
    if args.params:
        load_params(program, args.params)
    else:
        print(f"dlc: warning: no --params: sampling from untrained, randomly initialized weights (train first, "
              f"e.g. dlc train {args.model} --data pysource --out lm.ckpt, then --params lm.ckpt)", file=sys.stderr)
    text = sample(program, args.prompt, length=args.length, temperature=args.temperature, seed=args.sample_seed)
    print(text)
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("generate", parents=[model], help="sample text from a character-level language model",
                       description="Feeds the prompt's bytes and samples one byte at a time from "
                                   "softmax(logits / temperature).")
    p.add_argument("--params", metavar="CKPT", help="trained parameters (checkpoint or artifact)")
    p.add_argument("--prompt", default="def ", help="text to continue (default 'def ')")
    p.add_argument("--length", type=int, default=200, help="bytes to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the sampler")
    add_threads_argument(p)
    p.set_defaults(func=cmd_generate)
