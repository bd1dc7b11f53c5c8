# Convolutional denoising autoencoder for scikit-learn's 8x8 digits: 64 pixels -> 12 numbers -> 64 pixels.
#   dlc train models/digits_ae.dlm --data digits
# Training corrupts the input with Gaussian noise (`normal`, in the train block only) and asks for the clean
# image back; inference reconstructs the clean input through the same (shared) parameters. Reconstruction
# error then scores how unlike the training digits an image is (examples/digits_generative.py: anomaly
# detection of held-out 9s).
input x: f32[N, 1, 8, 8]

block encoder(x) {
    h1 = conv2d(x, 16, kernel_size=3, padding=1, activation="relu")                 # 16 x 8 x 8
    h2 = conv2d(h1, 32, kernel_size=3, stride=2, padding=1, activation="relu")     # 32 x 4 x 4
    return dense(flatten(h2), 12, name="code")
}

block decoder(code) {
    h1 = dense(code, 512, activation="relu") |> reshape([-1, 32, 4, 4])
    h2 = conv_transpose2d(h1, 16, kernel_size=4, stride=2, padding=1, activation="relu")   # 16 x 8 x 8
    return conv2d(h2, 1, kernel_size=3, padding=1)                                   # logits
}

code = encoder(x, name="enc")
output recon = sigmoid(decoder(code, name="dec"))

train {
    noisy = x + normal(like=x, std=0.25)
    logits = decoder(encoder(noisy, share="enc"), share="dec")
    loss = binary_cross_entropy(logits, x)
    metrics = [mse(sigmoid(logits), x)]
    optimizer = adam(lr=2e-3)
    schedule = cosine(steps=1380, warmup=20)
    epochs = 60
    batch_size = 64
}
