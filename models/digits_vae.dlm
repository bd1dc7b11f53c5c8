# Variational autoencoder for scikit-learn's 8x8 digits (pixels in [0, 1], Bernoulli likelihood), an
# 8-dimensional latent space with a standard normal prior.
#   dlc train models/digits_vae.dlm --data digits
# The loss is the negative ELBO in nats per image: reconstruction (summed over the 64 pixels) plus
# KL(q(z|x) || N(0, I)) in closed form. The sample z = mu + exp(logvar / 2) * eps uses `normal`, so the
# gradient reaches mu and logvar (the reparameterization trick).
input x: f32[N, 64]
input z: f32[M, 8]            # latent vectors to decode (samples, interpolations); not needed for training

block encoder(x) {
    h = dense(x, 128, activation="relu") |> dense(128, activation="relu")
    return dense(h, 8, name="mu"), dense(h, 8, name="logvar")
}

block decoder(z) {
    h = dense(z, 128, activation="relu") |> dense(128, activation="relu")
    return dense(h, 64)       # logits of the 64 pixels
}

mu, logvar = encoder(x, name="enc")
sample = mu + exp(0.5 * logvar) * normal(like=mu)
logits = decoder(sample, name="dec")
output z_mean = mu
output recon = sigmoid(decoder(mu, share="dec"))
output decoded = sigmoid(decoder(z, share="dec"))

train {
    reconstruction = mean(sum(softplus(logits) - x * logits, axis=1))
    kl = mean(sum(0.5 * (exp(logvar) + mu ** 2 - 1 - logvar), axis=1))
    loss = reconstruction + kl
    metrics = [reconstruction, kl]
    optimizer = adam(lr=1e-3)
    epochs = 150
    batch_size = 64
}
