# Deep Q-learning for Gymnasium's CartPole-v1: a Q-network and its target network, two calls of one block.
#   dlc rl models/cartpole_dqn.dlm            (needs the `rl` extra: pip install 'dlc[rl]')
# Inference reads only the state s and gives Q(s, .) for the two actions. Training reads a replay batch
# (s, a, r, s2, done). The target network is the same block called again with its own parameters, frozen:
# the loop copies online.* into target.* every K steps (dlc.rl.sync_target), so the bootstrapped target
# r + gamma * max_a' Q_target(s2, a') stays fixed in between.
input s: f32[N, 4]
input a: i32[N]
input r: f32[N]
input s2: f32[N, 4]
input done: f32[N]

block qnet(s) {
    h = dense(s, 128, activation="relu") |> dense(128, activation="relu")
    return dense(h, 2)
}

output q = qnet(s, name="online")
q_next = qnet(s2, name="target")

train {
    q_taken = sum(q * one_hot(a, 2), axis=1)                     # Q(s, a): the action's column
    target = r + 0.99 * (1 - done) * max(q_next, axis=1)
    loss = huber(q_taken, stop_gradient(target))
    freeze = ["target"]
    optimizer = adam(lr=5e-4)
    clip_norm = 10.0
    batch_size = 64
}
