"""Issue 10, item 1: the train block is strict. A mistyped setting is a located error with a "did you mean";
assignments that define tensors (terms of the loss) still work."""

from __future__ import annotations

import pytest

import dlc

MODEL = """input x: f32[N, 4]
input y: i32[N]
output logits = dense(x, 3)
train {
    loss = cross_entropy(logits, y)
    %s
}
"""


@pytest.mark.parametrize("line,message,column", [
    ("epoch = 5", "unknown training setting 'epoch'; did you mean 'epochs'?", 5),
    ("batchsize = 128", "unknown training setting 'batchsize'; did you mean 'batch_size'?", 5),
    ("learning_rate = 0.1", "unknown training setting 'learning_rate'; the learning rate is an optimizer "
                            "argument, e.g. optimizer = adam(lr=0.001)", 5),
    ("optimiser = adam(lr=0.1)", "unknown training setting 'optimiser'; did you mean 'optimizer'?", 5),
    ("opt = sgd(lr=0.1)", "did you mean 'optimizer = sgd(...)'?", 5),
    ("optimizer = Adam(lr=0.1)", "unknown optimizer 'Adam'; did you mean 'adam'?", 17),
    ("schedule = Cosine(steps=10)", "unknown schedule 'Cosine'; did you mean 'cosine'?", 16),
    ("foo = 3", "unknown training setting 'foo' (settings: optimizer, schedule,", 5),
])
def test_mistyped_settings_are_located_errors(line: str, message: str, column: int) -> None:
    program = dlc.compile(source=MODEL % line)
    with pytest.raises(dlc.CompileError) as info:
        program.spec()
    assert message in str(info.value)
    assert (info.value.loc.line, info.value.loc.col) == (6, column)


def test_tensor_assignments_still_define_terms_of_the_loss() -> None:
    source = MODEL.replace("loss = cross_entropy(logits, y)", "penalty = mean(square(logits))\n"
                           "    loss = cross_entropy(logits, y) + 0.01 * penalty") % "epochs = 2"
    assert dlc.compile(source=source).spec().epochs == 2
