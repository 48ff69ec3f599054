"""Shapes and construction of the evaluation networks."""
import pytest
import torch

from coda_utils.architectures import ARCHITECTURES, ConvNet, build_model

torch.set_num_threads(1)

SIZES = [28, 32, 64, 128, 256]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape(arch: str, size: int, channels: int) -> None:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=7, channels=channels, im_size=size)
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_convnet_matches_dc_on_fashion_mnist() -> None:
    """DC's ConvNet-3 for 1x28x28: padding 3 in the first conv, a 128x4x4 map, 317,706 weights."""
    model = build_model("convnet3", 10, 1, 28)
    assert isinstance(model, ConvNet)
    assert model.features[0].padding == (3, 3)
    assert model.classifier.in_features == 128 * 4 * 4
    assert sum(p.numel() for p in model.parameters()) == 317_706
    assert build_model("convnet3", 10, 3, 32).features[0].padding == (1, 1)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_instance_norm_makes_outputs_batch_independent(arch: str) -> None:
    model = build_model(arch, 10, 3, 32).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:1], model(x[:1]), rtol=1e-4, atol=1e-5)


def test_unknown_arch() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'vgg11'.*convnet3"):
        build_model("vgg11", 10, 3, 32)


@pytest.mark.parametrize("kwargs", [dict(num_classes=1), dict(channels=2), dict(im_size=16)])
def test_bad_sizes(kwargs: dict) -> None:
    args = dict(arch="convnet3", num_classes=10, channels=3, im_size=32) | kwargs
    with pytest.raises(ValueError):
        build_model(**args)
