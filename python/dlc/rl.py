"""Deep Q-learning around a compiled program: experience replay, an epsilon-greedy schedule, a target network.

The model file declares the networks and the loss (models/cartpole_dqn.dlm): inference maps a state batch `s`
to Q-values `q`; the training step reads a replay batch (s, a, r, s2, done) and is one compiled plan. This
module is the part that is not a graph: acting in a Gymnasium environment, the replay buffer, and copying
the online network's parameters into the frozen target network every `sync_every` steps (`sync_target`).
Everything is seeded (environment resets, exploration, replay sampling, the program), so a run is
reproducible for a thread count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import DlcError


def sync_target(program: Any, online: str = "online", target: str = "target") -> None:
    """Copies every parameter `online.<rest>` into `target.<rest>` (the target network's refresh)."""
    params = program.params
    pairs = {target + name[len(online):]: value for name, value in params.items() if name.startswith(online + ".")}
    missing = [name for name in pairs if name not in params]
    if not pairs or missing:
        raise DlcError(f"no parameters '{target}.*' matching '{online}.*' (missing: {', '.join(missing[:3])})")
    program.set_params(pairs)


class ReplayBuffer:
    """A fixed-size ring of transitions, sampled uniformly."""

    def __init__(self, capacity: int, state_dim: int):
        self.s = np.zeros((capacity, state_dim), np.float32)
        self.s2 = np.zeros((capacity, state_dim), np.float32)
        self.a = np.zeros(capacity, np.int32)
        self.r = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.capacity, self.size, self.next = capacity, 0, 0

    def add(self, s: np.ndarray, a: int, r: float, s2: np.ndarray, done: bool) -> None:
        k = self.next
        self.s[k], self.a[k], self.r[k], self.s2[k], self.done[k] = s, a, r, s2, float(done)
        self.next = (k + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
        idx = rng.integers(0, self.size, batch)
        return {"s": self.s[idx], "a": self.a[idx], "r": self.r[idx], "s2": self.s2[idx], "done": self.done[idx]}


@dataclass
class DQNConfig:
    env: str = "CartPole-v1"
    steps: int = 60_000  # environment steps at most
    buffer: int = 50_000
    batch_size: int = 64
    learn_start: int = 1_000  # transitions collected before the first update
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_steps: int = 12_000  # linear decay of epsilon over these steps
    sync_every: int = 500  # steps between target-network refreshes
    eval_every: int = 2_500  # steps between greedy evaluations (the best parameters are kept)
    eval_episodes: int = 10
    target_return: float | None = None  # stop early once a greedy evaluation reaches it
    seed: int = 0


@dataclass
class DQNResult:
    episode_returns: list[float] = field(default_factory=list)
    episode_end_steps: list[int] = field(default_factory=list)
    evaluations: list[tuple[int, float]] = field(default_factory=list)  # (step, mean greedy return)
    best_params: dict[str, np.ndarray] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0


def make_env(name: str) -> Any:
    try:
        import gymnasium
    except ImportError:
        raise DlcError("reinforcement learning needs Gymnasium: pip install \".[rl]\" (in the dlc checkout)") from None
    return gymnasium.make(name)


def greedy_action(program: Any, state: np.ndarray) -> int:
    return int(np.argmax(program(s=state[None].astype(np.float32))["q"][0]))


def evaluate(program: Any, env: Any, episodes: int, seed: int) -> list[float]:
    """Returns of greedy episodes (no exploration), the environment reset with seeds seed, seed + 1, ..."""
    returns = []
    for k in range(episodes):
        state, _ = env.reset(seed=seed + k)
        total, over = 0.0, False
        while not over:
            state, reward, terminated, truncated, _ = env.step(greedy_action(program, state))
            total += float(reward)
            over = terminated or truncated
        returns.append(total)
    return returns


def train_dqn(program: Any, config: DQNConfig, progress: Callable[[str], None] | None = None) -> DQNResult:
    """Trains `program` (a model like models/cartpole_dqn.dlm) by deep Q-learning; leaves the best greedy
    parameters found in the program and returns the learning curve."""
    env, eval_env = make_env(config.env), make_env(config.env)
    rng = np.random.default_rng(config.seed)
    state_dim = int(np.prod(env.observation_space.shape))
    actions = int(env.action_space.n)
    buffer = ReplayBuffer(config.buffer, state_dim)
    result = DQNResult()
    sync_target(program)
    start = time.perf_counter()
    state, _ = env.reset(seed=config.seed)
    episode_return, best = 0.0, -np.inf
    for step in range(1, config.steps + 1):
        eps = max(config.eps_end, config.eps_start - (config.eps_start - config.eps_end) * step / config.eps_steps)
        action = int(rng.integers(actions)) if rng.random() < eps else greedy_action(program, state)
        nxt, reward, terminated, truncated, _ = env.step(action)
        # A time limit is not a terminal state: its value is still bootstrapped.
        buffer.add(state, action, float(reward), nxt, terminated)
        episode_return += float(reward)
        state = nxt
        if terminated or truncated:
            result.episode_returns.append(episode_return)
            result.episode_end_steps.append(step)
            episode_return = 0.0
            state, _ = env.reset(seed=int(rng.integers(2**31)))
        if buffer.size >= config.learn_start:
            program.train_step(**buffer.sample(rng, config.batch_size))
            if step % config.sync_every == 0:
                sync_target(program)
        if step % config.eval_every == 0 and buffer.size >= config.learn_start:
            score = float(np.mean(evaluate(program, eval_env, config.eval_episodes, seed=10_000 + step)))
            result.evaluations.append((step, score))
            if score >= best:
                best = score
                result.best_params = {k: np.array(v) for k, v in program.params.items()}
            if progress is not None:
                progress(f"step {step}: greedy return {score:.1f} (best {best:.1f}), epsilon {eps:.3f}")
            if config.target_return is not None and score >= config.target_return:
                break
    result.steps = step
    result.seconds = time.perf_counter() - start
    if result.best_params:
        program.set_params(result.best_params)
    return result
