"""JAX twins of the dense reference workloads (mlp, gelu_mlp, ew_chain): a `jax.jit`-compiled training
step (forward, loss, backward, Adam lr 1e-3) written with `jax.numpy`, the peer issue 11 names for training.
The convolutional and recurrent workloads have no JAX twin here yet.

`jax_train_call(name, batch)` returns a zero-argument callable running one step (blocking until it is done),
or None when JAX is missing or the workload has no twin.
"""

from __future__ import annotations

from typing import Any, Callable


def _dense(key: Any, fan_in: int, fan_out: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    bound = 1.0 / fan_in ** 0.5
    return {"w": jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -bound, bound),
            "b": jnp.zeros((fan_out,), jnp.float32)}


def _layer_norm(h: Any, g: Any, b: Any) -> Any:
    import jax.numpy as jnp
    mu = h.mean(-1, keepdims=True)
    var = ((h - mu) ** 2).mean(-1, keepdims=True)
    return (h - mu) / jnp.sqrt(var + 1e-5) * g + b


def _model(name: str, key: Any) -> tuple[dict[str, Any], Callable[[Any, Any], Any], tuple[int, ...], bool]:
    """(params, forward(params, x), input shape without batch, classification?)"""
    import jax
    import jax.numpy as jnp
    keys = jax.random.split(key, 3)
    if name == "mlp":
        params = {"l1": _dense(keys[0], 784, 512), "l2": _dense(keys[1], 512, 256), "l3": _dense(keys[2], 256, 10)}

        def fwd(p: Any, x: Any) -> Any:
            h = jax.nn.relu(x @ p["l1"]["w"] + p["l1"]["b"])
            h = jax.nn.relu(h @ p["l2"]["w"] + p["l2"]["b"])
            return h @ p["l3"]["w"] + p["l3"]["b"]
        return params, fwd, (784,), True
    if name == "gelu_mlp":
        params = {"l1": _dense(keys[0], 256, 1024), "l2": _dense(keys[1], 1024, 256),
                  "g": jnp.ones((1024,), jnp.float32), "b": jnp.zeros((1024,), jnp.float32)}

        def fwd(p: Any, x: Any) -> Any:
            h = jax.nn.gelu(x @ p["l1"]["w"] + p["l1"]["b"], approximate=False)
            h = jax.nn.gelu(_layer_norm(h, p["g"], p["b"]), approximate=False)
            return h @ p["l2"]["w"] + p["l2"]["b"]
        return params, fwd, (256,), False
    if name == "ew_chain":
        params = {"scale": jnp.ones((4096,), jnp.float32), "shift": jnp.zeros((4096,), jnp.float32),
                  "g": jnp.ones((4096,), jnp.float32), "b": jnp.zeros((4096,), jnp.float32)}

        def fwd(p: Any, x: Any) -> Any:
            h = jax.nn.gelu(x * p["scale"] + p["shift"], approximate=False) + x
            return jnp.tanh(_layer_norm(h, p["g"], p["b"])) * 0.5 + 0.5
        return params, fwd, (4096,), False
    raise KeyError(name)


def jax_train_call(name: str, batch: int) -> Callable[[], Any] | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    try:
        params, fwd, shape, classify = _model(name, jax.random.PRNGKey(0))
    except KeyError:
        return None
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, *shape), jnp.float32)
    y = jax.random.randint(jax.random.PRNGKey(2), (batch,), 0, 10)

    def loss(p: Any) -> Any:
        out = fwd(p, x)
        if classify:
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), y[:, None], axis=1))
        return jnp.mean(out * out)

    @jax.jit
    def step(p: Any, m: Any, v: Any, t: Any) -> Any:
        g = jax.grad(loss)(p)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        lr = 1e-3 * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        p = jax.tree_util.tree_map(lambda p, m, v: p - lr * m / (jnp.sqrt(v) + 1e-8), p, m, v)
        return p, m, v, t

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = [params, zeros, zeros, jnp.float32(0)]

    def call() -> None:
        state[:] = step(*state)
        jax.block_until_ready(state[0])
    return call
