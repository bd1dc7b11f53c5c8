# Convolutional GAN (DCGAN-style) for scikit-learn's 8x8 digits, in one file: a generator that grows a 4x4 map
# into an image with a transposed convolution, a strided-convolution discriminator, batch norm in both, and two
# training phases that take turns (docs/training.md, "Phases"). The discriminator is called on the real and on
# the generated batch with shared parameters; each call normalizes with its own batch's statistics, as
# PyTorch's DCGAN does with separate real and fake batches.
# A categorical code (InfoGAN, Chen et al. 2016) keeps samples from blending two digits: the argmax of the
# first 10 latent entries picks one of 10 codes, uniformly since they are i.i.d. N(0, 1), and a second head of
# the discriminator must recover the code from the generated image. Sampling stays z ~ N(0, I).
#   dlc train models/digits_dcgan.dlm --data digits --out dcgan.ckpt
#   python examples/digits_generative.py dcgan --params dcgan.ckpt     # samples judged by digits_cnn
input x: f32[N, 1, 8, 8]      # real images, pixels in [0, 1]
input z: f32[M, 32]           # latent vectors to turn into images (inference only)

block code(z) {
    zc = slice(z, 1, 0, 10)
    return cast(ge(zc, max(zc, axis=1, keepdims=true)), "f32")      # one-hot of the argmax
}

block generator(z) {
    zin = concat(code(z), slice(z, 1, 10, 32), axis=1)
    h = dense(zin, 1024, bias=false) |> batch_norm |> relu |> reshape([-1, 64, 4, 4])
    u = conv_transpose2d(h, 32, kernel_size=4, stride=2, padding=1, bias=false) |> batch_norm |> relu
    return conv2d(u, 1, kernel_size=3, padding=1) |> sigmoid
}

block discriminator(img) {
    h = conv2d(img, 32, kernel_size=4, stride=2, padding=1) |> leaky_relu(0.2)
    f = conv2d(h, 64, kernel_size=4, stride=2, padding=1, bias=false) |> batch_norm |> leaky_relu(0.2) |> flatten
    return dense(f, 1), dense(f, 10)  # logit of "real", logits of the code
}

noise = normal([N, 32])                             # fresh noise every step
fake = generator(noise, name="gen")
d_real, q_real = discriminator(x, name="disc")
d_fake, q_fake = discriminator(fake, share="disc")
output sample = generator(z, share="gen")

train {
    # Real -> 1 (smoothed to 0.9), generated -> 0; the generator's non-saturating objective; both phases
    # also minimize the code's cross-entropy on generated images. The learning rates decay along a cosine over
    # the run (600 epochs of 23 batches, each phase taking every other one).
    code_loss = cross_entropy(q_fake, code(noise))
    d_real_loss = binary_cross_entropy(d_real, full(like=d_real, value=0.9))
    disc_loss = d_real_loss + binary_cross_entropy(d_fake, zeros(like=d_fake)) + code_loss
    gen_loss = binary_cross_entropy(d_fake, ones(like=d_fake)) + code_loss
    phases = [
        phase("discriminator", loss=disc_loss, params=["disc"], optimizer=adam(lr=5e-4, beta1=0.5),
              schedule=cosine(steps=6900, min_lr=2e-5)),
        phase("generator", loss=gen_loss, params=["gen"], optimizer=adam(lr=5e-4, beta1=0.5),
              schedule=cosine(steps=6900, min_lr=2e-5)),
        ]
    epochs = 600
    batch_size = 64
}
