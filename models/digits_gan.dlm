# Generative adversarial network for scikit-learn's 8x8 digits, in one file: a generator and a discriminator,
# the discriminator called on real and on generated images with shared parameters, and two training phases
# that take turns (docs/training.md, "Phases").
#   dlc train models/digits_gan.dlm --data digits
# Sampling: feed latent vectors z ~ N(0, I) to the `sample` output (examples/digits_generative.py gan).
input x: f32[N, 64]           # real images, pixels in [0, 1]
input z: f32[M, 16]           # latent vectors to turn into images (inference only)

block generator(z) {
    h = dense(z, 128) |> leaky_relu(0.2) |> dense(256) |> leaky_relu(0.2)
    return sigmoid(dense(h, 64))
}

block discriminator(img) {
    h = dense(img, 256) |> leaky_relu(0.2) |> dense(128) |> leaky_relu(0.2)
    return dense(h, 1)        # logit of "real"
}

fake = generator(normal([N, 16]), name="gen")       # fresh noise every step
d_real = discriminator(x, name="disc")
d_fake = discriminator(fake, share="disc")
output sample = generator(z, share="gen")

train {
    # The discriminator learns real -> 1 (smoothed to 0.9), generated -> 0; the generator, the
    # non-saturating objective: make the discriminator say 1 on its samples.
    d_real_loss = binary_cross_entropy(d_real, full(like=d_real, value=0.9))
    disc_loss = d_real_loss + binary_cross_entropy(d_fake, zeros(like=d_fake))
    gen_loss = binary_cross_entropy(d_fake, ones(like=d_fake))
    phases = [
        phase("discriminator", loss=disc_loss, params=["disc"], optimizer=adam(lr=2e-4, beta1=0.5)),
        phase("generator", loss=gen_loss, params=["gen"], optimizer=adam(lr=2e-4, beta1=0.5)),
        ]
    epochs = 1000
    batch_size = 64
}
