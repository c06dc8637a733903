"""Random small LogicNet architectures (tests/conftest.py: random_model) build, run and harden."""
from conftest import random_input, random_model


def test_random_models_build_and_run():
    for seed in range(5):
        m = random_model(seed).eval()
        out = m(random_input(m, 3))
        assert out.shape == (3, m.num_classes)
