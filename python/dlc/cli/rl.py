"""`dlc rl MODEL`: deep Q-learning of a model like models/cartpole_dqn.dlm in a Gymnasium environment."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .common import load_program


def cmd_rl(args: argparse.Namespace) -> int:
    import dlc
    from ..rl import DQNConfig, evaluate, make_env, train_dqn
    dlc.set_num_threads(args.threads)  # a Q-network's kernels are too small to share between threads
    program = load_program(args)
    config = DQNConfig(env=args.env, steps=args.steps, seed=args.seed, target_return=args.stop_at)
    say = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    result = train_dqn(program, config, progress=say)
    returns = evaluate(program, make_env(args.env), args.eval_episodes, seed=1_000_000 + args.seed)
    if args.out:
        program.save_checkpoint(args.out)
    if args.curve:
        save_curve(result, args.curve, args.env)
    summary = {"model": args.model, "env": args.env, "steps": result.steps, "episodes": len(result.episode_returns),
               "train_seconds": round(result.seconds, 1), "eval_episodes": len(returns),
               "eval_mean_return": float(np.mean(returns)), "eval_min_return": float(np.min(returns)),
               "checkpoint": args.out, "curve": args.curve}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{result.steps} steps, {len(result.episode_returns)} episodes in {result.seconds:.1f} s; greedy "
              f"return over {len(returns)} episodes: mean {np.mean(returns):.1f}, min {np.min(returns):.0f}")
    return 0


def save_curve(result: object, path: str, env: str) -> None:
    """Episode returns (and their 20-episode moving mean) against environment steps, with the greedy
    evaluations, as a PNG (needs matplotlib: the `plot` extra)."""
    from matplotlib.figure import Figure
    steps, returns = np.array(result.episode_end_steps), np.array(result.episode_returns)  # type: ignore[attr-defined]
    fig = Figure(figsize=(6, 3.2))  # not pyplot: no backend switch for whoever imported dlc
    ax = fig.subplots()
    ax.plot(steps, returns, ".", ms=2, alpha=0.4, label="episode return (exploring)")
    if len(returns) >= 20:
        ax.plot(steps[19:], np.convolve(returns, np.ones(20) / 20, "valid"), label="moving mean (20)")
    if result.evaluations:  # type: ignore[attr-defined]
        e_steps, e_scores = zip(*result.evaluations)  # type: ignore[attr-defined]
        ax.plot(e_steps, e_scores, "o-", label="greedy evaluation")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(f"DQN on {env}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rl", parents=[model], help="deep Q-learning in a Gymnasium environment (CartPole-v1)",
                       description="Trains a Q-network model (inputs s, a, r, s2, done; output q; a frozen target "
                                   "network synchronized every 500 steps) with experience replay and an "
                                   "epsilon-greedy schedule, keeps the best greedy parameters, then evaluates "
                                   "them. Needs the `rl` extra.")
    p.add_argument("--env", default="CartPole-v1", help="Gymnasium environment id (default CartPole-v1)")
    p.add_argument("--steps", type=int, default=60_000, help="environment steps at most (default 60000)")
    p.add_argument("--stop-at", type=float, default=500.0,
                   help="stop once a greedy evaluation reaches this mean return (default 500)")
    p.add_argument("--eval-episodes", type=int, default=100, help="final greedy evaluation episodes")
    p.add_argument("--out", metavar="CKPT", help="write the best parameters as a checkpoint")
    p.add_argument("--curve", metavar="PNG", help="write the learning curve (needs matplotlib)")
    p.add_argument("--threads", type=int, default=1, help="kernel threads (default 1: the networks are small)")
    p.add_argument("--json", action="store_true", help="end with one JSON object of results")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_rl)
