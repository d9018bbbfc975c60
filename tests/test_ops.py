"""PixelShuffle against PyTorch's definition; fast convolutions against XLA's."""

import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lkca_jax.ops.conv import (
    WINOGRAD_MIN_CHANNELS,
    WINOGRAD_MIN_PIXELS,
    Conv,
    batch_chunks,
    columns_smaller,
    conv,
    conv_xla,
    gated_fusion,
    row_tap_conv,
    uses_row_taps,
    uses_winograd,
    winograd_chunks,
    winograd_conv3x3,
    winograd_conv3x3_vjp,
)
from lkca_jax.ops.pixel_shuffle import pixel_shuffle


def pixel_shuffle_reference(x, r):
    """Transcription of torch.nn.PixelShuffle's definition, NHWC, with explicit loops."""
    n, h, w, crr = x.shape
    c = crr // (r * r)
    out = np.empty((n, h * r, w * r, c), x.dtype)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                out[:, i::r, j::r, ch] = x[:, :, :, ch * r * r + i * r + j]
    return out


@pytest.mark.parametrize("r,c", [(2, 3), (3, 2), (4, 5)])
def test_pixel_shuffle(r, c, rng):
    x = rng.standard_normal((2, 3, 4, c * r * r)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(pixel_shuffle(x, r)), pixel_shuffle_reference(x, r))


def test_pixel_shuffle_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 4, 3 * 16)).astype(np.float32)
    ref = torch.nn.functional.pixel_shuffle(torch.from_numpy(x).permute(0, 3, 1, 2), 4).permute(0, 2, 3, 1)
    np.testing.assert_array_equal(np.asarray(pixel_shuffle(x, 4)), ref.numpy())


def direct_conv_float64(x, kernel, groups=1, dilation=1):
    """'SAME' cross-correlation in float64, tap by tap and group by group (odd kernels)."""
    n, h, w, cin = x.shape
    k, _, gin, cout = kernel.shape
    pad = dilation * (k - 1) // 2
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kk, gout = np.asarray(kernel, np.float64), cout // groups
    out = np.zeros((n, h, w, cout))
    for g in range(groups):
        for i in range(k):
            for j in range(k):
                window = xp[:, i * dilation:i * dilation + h, j * dilation:j * dilation + w, g * gin:(g + 1) * gin]
                out[..., g * gout:(g + 1) * gout] += window @ kk[i, j, :, g * gout:(g + 1) * gout]
    return out


def _check_value_and_grad(x, kernel, groups, dilation):
    """The fast path's value against a float64 direct convolution; its gradients (the custom
    backward) against XLA's autodiff of its own convolution."""
    cot = np.random.default_rng(1).standard_normal(conv_xla(x, kernel, groups, dilation).shape).astype(np.float32)
    bias = np.random.default_rng(2).standard_normal(kernel.shape[-1]).astype(np.float32)

    def loss(impl):
        return lambda x, k, b: jnp.sum(conv(x, k, groups, dilation, impl, b) * cot)

    ref_y = direct_conv_float64(x, kernel, groups, dilation) + bias
    fast_y = jax.jit(lambda x, k, b: conv(x, k, groups, dilation, "fast", b))(x, kernel, bias)
    ref_g = jax.grad(loss("xla"), argnums=(0, 1, 2))(x, kernel, bias)
    fast_g = jax.jit(jax.grad(loss("fast"), argnums=(0, 1, 2)))(x, kernel, bias)
    # The bias gradient is the cotangent's sum over pixels, computed independently here.
    np.testing.assert_allclose(np.asarray(fast_g[2]), cot.sum(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)
    for got, ref in [(fast_y, ref_y), *zip(fast_g, ref_g)]:
        got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
        err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
        assert err < 1e-5, err


@pytest.mark.parametrize("k,d", [(3, 1), (3, 2), (5, 1)])
def test_dense_conv_on_fewer_pixels_than_outputs_takes_the_column_product(k, d, rng):
    """12 output pixels, 16 output channels: the im2col product's branch of the forward (as the x8
    upsampler at batch 1 of 16 x 16 takes it), against float64 and XLA's autodiff."""
    x = rng.standard_normal((1, 3, 4, 5)).astype(np.float32)
    kernel = rng.standard_normal((k, k, 5, 16)).astype(np.float32)
    assert columns_smaller(x, kernel)
    assert not columns_smaller(x, kernel[..., :12])
    # the product's branch, not XLA's convolution, in the forward
    assert "conv_general_dilated" not in str(jax.make_jaxpr(lambda x, k: conv(x, k, 1, d, "fast"))(x, kernel))
    _check_value_and_grad(x, kernel, 1, d)


@pytest.mark.parametrize("k,d", [(3, 1), (3, 2), (5, 1), (9, 1)])
def test_dense_conv_by_kernel_rows_matches_float64_and_xla_gradients(k, d, rng, monkeypatch):
    """64 output channels on a 6 x 7 map by the kernel rows' product (as 3D-FCNN's 9 x 9 conv and
    VDSR's convs take it at their sizes; the size floor lowered so that a tiny map does too): its
    value against float64 and its gradients against XLA's autodiff; then a batch of 4 over a cap
    lowered to 1.5 images' products runs in 4 chunks, within float rounding of float64."""
    conv_module = sys.modules["lkca_jax.ops.conv"]
    monkeypatch.setattr(conv_module, "ROW_TAP_MIN_MACS", 1)
    x = rng.standard_normal((2, 6, 7, 5)).astype(np.float32)
    kernel = rng.standard_normal((k, k, 5, 64)).astype(np.float32)
    assert uses_row_taps(x, kernel)
    assert "conv_general_dilated" not in str(jax.make_jaxpr(lambda x, k: conv(x, k, 1, d, "fast"))(x, kernel))
    _check_value_and_grad(x, kernel, 1, d)
    x4 = rng.standard_normal((4, 6, 7, 5)).astype(np.float32)
    per_image = k * 6 * 7 * 64
    assert batch_chunks(x4.shape, per_image, int(1.5 * per_image)) == 4
    monkeypatch.setattr(conv_module, "ROW_TAP_MAX_VALUES", int(1.5 * per_image))
    text = str(jax.make_jaxpr(lambda x, k: row_tap_conv(x, k, d))(x4, kernel))  # fresh functions: not jit's cache
    got = np.asarray(jax.jit(lambda x, k: row_tap_conv(x, k, d))(x4, kernel))
    assert text.count("scan[") + text.count("while[") == 1
    ref = direct_conv_float64(x4, kernel, 1, d)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("shape,k,cout,expected", [
    ((1, 16, 16, 128), 9, 64, True),  # 3D-FCNN's first conv: 9 x 256 x 64 = 147456 values, 151 M MACs
    ((16, 16, 16, 64), 3, 64, True),  # VDSR's body at batch 16: 151 M MACs, 49152 values an image
    ((1, 16, 16, 64), 3, 64, False),  # VDSR's body at batch 1: 9.4 M MACs, under 2^25
    ((1, 32, 32, 64), 3, 64, True),  # 37.7 M MACs
    ((1, 64, 64, 128), 9, 64, False),  # 9 x 4096 x 64 = 2359296 values: over 2^20
    ((1, 128, 128, 64), 3, 32, False),  # 3 x 16384 x 32 = 2^20 values: the cap (over it)
    ((1, 64, 64, 64), 3, 32, False),  # 32 outputs: won on one CPU, lost on the other
    ((1, 64, 64, 64), 3, 31, False),
    ((1, 64, 64, 64), 3, 65, False),  # past 64 outputs
    ((1, 64, 64, 256), 3, 64, False),  # past 128 inputs (ESSAformer's 256 -> 64)
    ((1, 64, 64, 64), 1, 64, False),  # 1x1: a matrix product already
])
def test_kernel_rows_are_used_between_their_size_bounds(shape, k, cout, expected):
    """Hand-counted against the documented bounds: k > 1, 64 output channels, at most 128 input
    channels, at least 2^25 multiply-adds, one image's row products (k H W Cout) under 2^20 values."""
    x, kernel = jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct((k, k, shape[-1], cout), jnp.float32)
    assert uses_row_taps(x, kernel) is expected
    batch = jax.export.symbolic_shape("batch")[0]  # export's symbolic shapes keep XLA's convolution
    assert not uses_row_taps(jax.ShapeDtypeStruct((batch, *shape[1:]), jnp.float32), kernel)


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("c", [6, 7, 1])  # even and odd channel halves, and a single channel
def test_depthwise_matches_xla(k, d, c, rng):
    x = rng.standard_normal((2, 9, 11, c)).astype(np.float32)
    kernel = rng.standard_normal((k, k, 1, c)).astype(np.float32)
    _check_value_and_grad(x, kernel, c, d)


@pytest.mark.parametrize("k,groups,cin,cout", [(1, 4, 12, 8), (1, 3, 6, 9), (3, 8, 16, 32), (5, 2, 6, 4),
                                               (7, 3, 6, 9)])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_grouped_matches_xla(k, groups, cin, cout, d, rng):
    x = rng.standard_normal((2, 7, 9, cin)).astype(np.float32)
    kernel = rng.standard_normal((k, k, cin // groups, cout)).astype(np.float32)
    _check_value_and_grad(x, kernel, groups, d)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("cin,cout", [(5, 6), (6, 5), (8, 2)])
def test_dense_matches_xla(k, d, cin, cout, rng):
    # The forward (XLA's own at these sizes) and the custom backward: for more output than input
    # channels im2col products of the input; for fewer, the cotangent's columns and a transposed conv.
    x = rng.standard_normal((2, 7, 9, cin)).astype(np.float32)
    kernel = rng.standard_normal((k, k, cin, cout)).astype(np.float32)
    _check_value_and_grad(x, kernel, 1, d)


@pytest.mark.parametrize("shape,cout", [((2, 6, 8, 3), 4), ((1, 7, 9, 5), 6), ((1, 1, 1, 2), 3), ((1, 2, 5, 4), 7)])
def test_winograd_matches_a_float64_direct_conv(shape, cout, rng):
    """Even and odd sizes (padded to whole 2x2 tiles, then cropped) and a 1-pixel image."""
    x = rng.standard_normal(shape).astype(np.float32)
    kernel = rng.standard_normal((3, 3, shape[-1], cout)).astype(np.float32)
    ref = direct_conv_float64(x, kernel)
    got = np.asarray(jax.jit(winograd_conv3x3)(x, kernel))
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("shape,cout", [((2, 6, 8, 3), 4), ((1, 7, 9, 5), 6), ((1, 1, 1, 2), 3), ((1, 2, 5, 4), 7)])
def test_winograd_gradients_match_float64_direct_sums(shape, cout, rng):
    """The hand-written backward against the adjoint written out in float64: the input gradient as
    the direct conv of the cotangent with the flipped, transposed kernel, the kernel gradient as the
    sum over pixels of each tap's shifted input times the cotangent."""
    x = rng.standard_normal(shape).astype(np.float32)
    kernel = rng.standard_normal((3, 3, shape[-1], cout)).astype(np.float32)
    g = rng.standard_normal((*shape[:3], cout)).astype(np.float32)
    gx, gk = jax.jit(winograd_conv3x3_vjp)(x, kernel, g)
    ref_gx = direct_conv_float64(g, np.transpose(kernel[::-1, ::-1], (0, 1, 3, 2)))
    n, h, w, _ = shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref_gk = np.stack([np.stack([np.einsum("nhwc,nhwo->co", xp[:, i:i + h, j:j + w], g.astype(np.float64))
                                 for j in range(3)]) for i in range(3)])
    for got, ref in ((gx, ref_gx), (gk, ref_gk)):
        assert got.shape == ref.shape
        np.testing.assert_allclose(np.asarray(got), ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_dense_3x3_on_a_large_map_runs_winograd_with_the_same_values_and_gradients(rng):
    """At the size where the fast path switches to Winograd, conv(..., 'fast') (its custom backward
    unchanged) against XLA's convolution, and against the float64 direct conv."""
    side = int(np.sqrt(WINOGRAD_MIN_PIXELS))
    x = rng.standard_normal((1, side, side, WINOGRAD_MIN_CHANNELS)).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_CHANNELS)) / 34).astype(np.float32)
    _check_value_and_grad(x, kernel, 1, 1)
    got = np.asarray(jax.jit(lambda x, k: conv(x, k, 1, 1, "fast"))(x, kernel))
    ref = direct_conv_float64(x, kernel)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    # it is the Winograd path: the same bits as winograd_conv3x3, and not XLA's
    np.testing.assert_array_equal(got, np.asarray(jax.jit(winograd_conv3x3)(x, kernel)))


def test_above_the_cap_the_forward_is_xlas_and_the_backward_winograds(rng, monkeypatch):
    """Past the forward's cap on the transformed tensors (lowered here to this shape's 16 x 256
    tiles x 128 channels), the forward stays XLA's convolution while the backward takes Winograd's
    terms, whose tensors are 4/9 of the im2col columns it would otherwise build."""
    monkeypatch.setattr(sys.modules["lkca_jax.ops.conv"], "WINOGRAD_MAX_VALUES", 16 * 256 * 128)
    x = rng.standard_normal((1, 32, 32, 128)).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, 128, 128)) / 34).astype(np.float32)
    assert not uses_winograd(x, kernel) and uses_winograd(x, kernel, capped=False)
    _check_value_and_grad(x, kernel, 1, 1)
    got = np.asarray(jax.jit(lambda x, k: conv(x, k, 1, 1, "fast"))(x, kernel))
    np.testing.assert_array_equal(got, np.asarray(jax.jit(conv_xla)(x, kernel)))
    cot = rng.standard_normal(got.shape).astype(np.float32)
    _, vjp = jax.vjp(lambda x, k: conv(x, k, 1, 1, "fast"), x, kernel)
    gx, gk = jax.jit(vjp)(cot)
    want_x, want_k = jax.jit(winograd_conv3x3_vjp)(x, kernel, cot)
    np.testing.assert_array_equal(np.asarray(gx), np.asarray(want_x))
    np.testing.assert_array_equal(np.asarray(gk), np.asarray(want_k))


@pytest.mark.parametrize("shape,channels,chunks", [
    ((16, 16, 16, 128), 8192, 2),  # 2^23 values an image: 8 a chunk stay under 2^27
    ((336, 32, 32, 256), 1024, 12),  # 2^22 an image: at most 31 a chunk, 28 the largest that divides 336
    ((21, 128, 128, 256), 1024, 21),  # 2^26 an image: one a chunk
    ((3, 512, 512, 128), 256, 3),  # 2^28 an image, over the cap alone: one a chunk
    ((7, 8, 8, 128), 128, 1),
    ((0, 8, 8, 128), 128, 1),  # an empty batch: whole
])
def test_winograd_chunks_are_the_fewest_that_divide_the_batch_under_the_cap(shape, channels, chunks):
    assert winograd_chunks(shape, channels) == chunks


def test_winograd_in_chunks_matches_float64_sums_and_its_unchunked_self(rng, monkeypatch):
    """A batch of 6 over a cap lowered to 2.5 images' transformed tensors runs in 3 chunks of 2: the
    value and both gradients against float64 direct sums, and within float rounding of the
    unchunked computation (the cap restored)."""
    conv_module = sys.modules["lkca_jax.ops.conv"]
    x = rng.standard_normal((6, 5, 7, 4)).astype(np.float32)  # 3 x 4 tiles an image
    kernel = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    g = rng.standard_normal((6, 5, 7, 6)).astype(np.float32)

    def run():  # fresh functions each time: jit's cache does not see the patched cap
        grads = jax.jit(lambda *a: winograd_conv3x3_vjp(*a))(x, kernel, g)
        return [np.asarray(a) for a in (jax.jit(lambda *a: winograd_conv3x3(*a))(x, kernel), *grads)]

    def loops():  # how many sequential loops (lax.map, lax.scan) the value and gradients trace to
        text = str(jax.make_jaxpr(lambda *a: winograd_conv3x3(*a))(x, kernel))
        text += str(jax.make_jaxpr(lambda *a: winograd_conv3x3_vjp(*a))(x, kernel, g))
        return text.count("scan[") + text.count("while[")

    whole = run()
    assert loops() == 0
    monkeypatch.setattr(conv_module, "WINOGRAD_MAX_VALUES", int(2.5 * 16 * 12 * 6))
    assert winograd_chunks(x.shape, 6) == 3
    assert loops() == 2
    got = run()
    xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref_gk = np.stack([np.stack([np.einsum("nhwc,nhwo->co", xp[:, i:i + 5, j:j + 7], g.astype(np.float64))
                                 for j in range(3)]) for i in range(3)])
    flipped = np.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
    refs = [direct_conv_float64(x, kernel), direct_conv_float64(g, flipped), ref_gk]
    for a, b, ref in zip(got, whole, refs):
        assert a.shape == ref.shape
        np.testing.assert_allclose(a, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("shape,cout,expected", [
    ((21, 64, 64, 240), 240, True),  # MSDformer's head at 64 x 64 LR: 16 x 21504 tiles x 240 = 82.6 M values
    ((1, 32, 32, 128), 128, True),  # 1024 pixels, 128 channels: the smallest
    ((1, 32, 31, 128), 128, False),  # 992 pixels
    ((1, 64, 64, 64), 128, False),  # 64 input channels
    ((1, 64, 64, 128), 64, False),  # 64 output channels
    ((1, 128, 128, 128), 2048, False),  # 16 x 4096 tiles x 2048 = 2^27 values: the cap (over it)
    ((16, 16, 16, 128), 8192, True),  # 2^27 values in all, 2^23 an image: two chunks of 8 images
    ((1, 512, 512, 128), 240, False),  # 16 x 65536 tiles x 240 (over it)
])
def test_winograd_is_used_between_its_size_bounds(shape, cout, expected):
    """Hand-counted against the documented bounds: >= 1024 output pixels, >= 128 input and output
    channels, one image's transformed tensors (16 x tiles x max channels) under 2^27 values."""
    x, kernel = jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct((3, 3, shape[-1], cout), jnp.float32)
    assert uses_winograd(x, kernel) is expected
    # the backward's test: the same minimum sizes, no cap (the two rows marked over it)
    assert uses_winograd(x, kernel, capped=False) is (expected or shape[0] == 1 and shape[1] >= 128)
    assert not uses_winograd(x, jax.ShapeDtypeStruct((5, 5, shape[-1], cout), jnp.float32))
    assert not uses_winograd(x, kernel, dilation=2)
    batch = jax.export.symbolic_shape("batch")[0]  # export's symbolic shapes keep XLA's convolution
    assert not uses_winograd(jax.ShapeDtypeStruct((batch, *shape[1:]), jnp.float32), kernel)


@pytest.mark.parametrize("k", [1, 3])
def test_grouped_kernel_expands_block_diagonal(k, rng):
    # The grouped map from input to output channels at one pixel, probed through the Jacobian,
    # is block-diagonal: output group j (PyTorch order, channels j*Cout/g ...) sees input group j only.
    g, cin, cout = 4, 8, 12
    layer = Conv(cout, k, groups=g, impl="fast")
    x = jnp.asarray(rng.standard_normal((1, 3, 3, cin)), jnp.float32)
    params = layer.init(jax.random.key(0), x)
    jac = jax.jacobian(lambda v: layer.apply(params, v)[0, 1, 1])(x)[:, 0, 1, 1, :]  # (cout, cin)
    blocks = np.kron(np.eye(g), np.ones((cout // g, cin // g)))
    assert np.all(np.asarray(jac)[blocks == 0] == 0)
    assert np.all(np.asarray(jac)[blocks == 1] != 0)


def test_conv_module_shapes_match_nn_conv(rng):
    x = jnp.ones((1, 5, 5, 12))
    ours = Conv(8, 3, groups=4).init(jax.random.key(0), x)["params"]
    theirs = nn.Conv(8, (3, 3), feature_group_count=4).init(jax.random.key(0), x)["params"]
    assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, theirs)


def test_conv_rejects_bad_groups():
    with pytest.raises(ValueError, match="groups=3"):
        Conv(8, 3, groups=3).init(jax.random.key(0), jnp.ones((1, 4, 4, 6)))


@pytest.mark.parametrize("channels, groups", [((16, 16, 16), 4), ((12, 12, 12), 4), ((8, 8, 8), 2), ((6, 6, 6), 3),
                                              ((5, 7, 3), 3)])
def test_gated_fusion_equals_the_grouped_conv_of_the_gated_concatenation(channels, groups, rng):
    # LKCA's inference fusion (per map, the gate folded into the kernel) against XLA's own grouped conv
    # of the concatenation, with maps whose channels cross group boundaries
    maps = [rng.standard_normal((2, 5, 6, c)).astype(np.float32) for c in channels]
    gate = rng.random((2, sum(channels))).astype(np.float32)
    kernel = rng.standard_normal((1, 1, sum(channels) // groups, 3 * groups)).astype(np.float32)
    bias = rng.standard_normal(3 * groups).astype(np.float32)
    want = conv_xla(jnp.concatenate(maps, -1) * gate[:, None, None], kernel, groups) + bias
    np.testing.assert_allclose(gated_fusion(maps, gate, kernel, bias, groups), want, rtol=1e-5, atol=1e-5)
