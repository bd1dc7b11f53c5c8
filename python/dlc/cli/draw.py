"""`dlc draw MODEL -o model.svg|png|dot [--plan]`: a picture of the model as written, or of its compiled plan."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..draw import model_dot, plan_dot, render
from .common import load_program, require_bound


def cmd_draw(args: argparse.Namespace) -> int:
    output = Path(args.output)
    program = load_program(args)
    title = Path(args.model).stem
    if args.plan:
        require_bound(program)
        source = plan_dot(program.compile_plan(training=False), title)
    else:
        source = model_dot(program.graph, title)
    render(source, output)
    print(f"{args.model}: drew the {'compiled plan' if args.plan else 'model'} to {output}")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("draw", parents=[model], help="draw the model or its compiled plan (Graphviz)",
                       description="Draws the model as written (layers, block calls as clusters, shapes on the "
                                   "edges) or, with --plan, the compiled plan (kernel steps, fusion groups, arena "
                                   "offsets). .dot needs nothing installed; .svg and .png need the draw extra "
                                   "(pip install \".[draw]\" in the dlc checkout) and Graphviz's dot program.")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="model.svg, model.png or model.dot")
    p.add_argument("--plan", action="store_true", help="draw the compiled inference plan (bind dims with -D)")
    p.set_defaults(func=cmd_draw)
