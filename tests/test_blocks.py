import math

import pytest
import torch

from pcdiff.models.blocks import (
    Attention,
    AttentionBlock,
    SpineConditioning,
    SpineEncoder,
    TimestepEncoder,
    arc_length_fraction,
    fourier_dim,
    fourier_features,
)


def naive_attention(attn: Attention, x, ctx, mask=None):
    """Softmax attention written out head by head."""
    h = attn.num_heads
    q = attn.to_q(x)
    k, v = attn.to_kv(ctx).chunk(2, dim=-1)
    d = q.shape[-1] // h
    outs = []
    for i in range(h):
        sl = slice(i * d, (i + 1) * d)
        logits = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d)  # (B, N, L)
        if mask is not None:
            logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
        outs.append(logits.softmax(-1) @ v[..., sl])
    return attn.to_out(torch.cat(outs, -1))


def test_attention_matches_naive_softmax_with_and_without_mask():
    torch.manual_seed(0)
    attn = Attention(8, 2, context_dim=5)
    x, ctx = torch.randn(3, 11, 8), torch.randn(3, 4, 5)
    mask = torch.tensor([[True, True, False, True], [False, False, False, True], [True] * 4])
    torch.testing.assert_close(attn(x, ctx), naive_attention(attn, x, ctx))
    torch.testing.assert_close(attn(x, ctx, mask), naive_attention(attn, x, ctx, mask))
    # masked keys really are ignored: changing them changes nothing
    ctx2 = ctx.clone()
    ctx2[0, 2] += 10.0
    ctx2[1, :3] -= 5.0
    torch.testing.assert_close(attn(x, ctx2, mask), attn(x, ctx, mask))
    with pytest.raises(ValueError, match="divisible"):
        Attention(6, 4)


def test_cross_attention_block_starts_as_identity():
    block = AttentionBlock(8, 2, context_dim=3)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(block(x, torch.randn(2, 4, 3)), x)
    self_block = AttentionBlock(8, 2)  # self-attention is not zero-initialised
    assert not torch.allclose(self_block(x), x)


def test_timestep_encoder_broadcasts_scalars_and_rejects_bad_shapes():
    enc = TimestepEncoder(16, frequency_dim=8)
    dev = torch.device("cpu")
    full = enc(torch.tensor([7, 7, 7]), 3, dev)
    assert full.shape == (3, 16)
    for t in (7, 7.0, torch.tensor(7), torch.tensor([7])):
        torch.testing.assert_close(enc(t, 3, dev), full)
    assert not torch.allclose(enc(torch.tensor([1, 500, 999]), 3, dev)[0], enc(torch.tensor([2, 500, 999]), 3, dev)[0])
    with pytest.raises(ValueError, match="timestep"):
        enc(torch.zeros(2), 3, dev)


def test_fourier_features_and_arc_length():
    x = torch.randn(2, 5, 3)
    f = fourier_features(x, 4)
    assert f.shape == (2, 5, fourier_dim(3, 4))
    torch.testing.assert_close(f[..., :3], x)
    assert fourier_features(x, 0) is x
    line = torch.tensor([[[0.0, 0, 0], [0, 1, 0], [0, 3, 0], [0, 4, 0]]])
    torch.testing.assert_close(arc_length_fraction(line), torch.tensor([[0.0, 0.25, 0.75, 1.0]]))
    assert torch.equal(arc_length_fraction(torch.zeros(1, 3, 3)), torch.zeros(1, 3))


def test_spine_encoder_uses_order_along_the_line():
    torch.manual_seed(0)
    enc = SpineEncoder(16, num_layers=1, num_heads=2, num_frequencies=3)
    kp = torch.cumsum(torch.rand(2, 6, 3), dim=1)
    tokens = enc(kp)
    assert tokens.shape == (2, 6, 16)
    # the same points listed in the other direction get different arc-length positions
    assert not torch.allclose(enc(kp.flip(1)).flip(1), tokens, atol=1e-4)


def test_spine_conditioning_null_tokens():
    torch.manual_seed(0)
    cond = SpineConditioning(time_dim=8, cond_dim=8, spine_layers=1, num_heads=2, num_frequencies=2, num_null_tokens=3)
    kp = torch.randn(2, 5, 3)
    c = cond(4, kp, None)
    assert c.tokens.shape == (2, 5, 8) and c.token_mask is None and c.temb.shape == (2, 8)
    c = cond(4, kp, torch.tensor([False, False]))
    assert c.token_mask.tolist() == [[False] * 5 + [True] * 3] * 2
    # with a mask, every parameter is in the graph even when no sample drops its condition (DDP)
    c = cond(4, kp, torch.tensor([True, True]))
    assert c.token_mask.tolist() == [[True] * 5 + [False] * 3] * 2
    c.tokens.sum().backward()
    assert cond.null_tokens.grad is not None and all(p.grad is not None for p in cond.spine.parameters())
    c = cond(4, kp, torch.tensor([True, False]))
    assert c.tokens.shape == (2, 8, 8)
    assert c.token_mask.tolist() == [[True] * 5 + [False] * 3, [False] * 5 + [True] * 3]
    torch.testing.assert_close(c.tokens[:, 5:], cond.null_tokens.expand(2, -1, -1))
    with pytest.raises(ValueError, match="num_null_tokens"):
        SpineConditioning(8, 8, 1, 2, 2, num_null_tokens=0)


@pytest.mark.parametrize("radius", [None, 0.7])
def test_set_abstraction_matches_dense_pointnet(radius):
    """The PointNetConv graph path equals max_k local_nn([x_j, (p_j - c) / r]) computed densely."""
    from pcdiff.models.point_layers import SetAbstraction
    from pcdiff.ops import gather_points

    torch.manual_seed(0)
    sa = SetAbstraction(4, 6, num_centres=5, num_neighbours=3, radius=radius, temb_dim=8)
    pos, feats, temb = torch.randn(3, 17, 3), torch.randn(3, 17, 4), torch.randn(3, 8)
    centres, out = sa(pos, feats, temb)
    c2, idx = sa.group(pos)
    torch.testing.assert_close(centres, c2)
    assert centres.shape == (3, 5, 3) and out.shape == (3, 5, 6)
    rel = (gather_points(pos, idx) - centres[:, :, None]) / (radius or 1.0)  # (B, S, k, 3)
    dense = sa.conv.local_nn(torch.cat([gather_points(feats, idx), rel], -1)).amax(dim=2)
    torch.testing.assert_close(out, sa.mlp(dense, temb))
    # fewer points than centres or neighbours: clipped, not an error
    centres, out = sa(pos[:, :2], feats[:, :2], temb)
    assert centres.shape == (3, 2, 3) and out.shape == (3, 2, 6)


def test_inverse_distance_interpolate_matches_loop():
    from pcdiff.models.point_layers import inverse_distance_interpolate

    g = torch.Generator().manual_seed(0)
    dst, src = torch.randn(2, 9, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    f = torch.randn(2, 5, 4, generator=g)
    out = inverse_distance_interpolate(dst, src, f, k=3)
    for b in range(2):
        for i in range(9):
            d2 = ((src[b] - dst[b, i]) ** 2).sum(-1)
            near = d2.argsort()[:3]
            w = 1.0 / d2[near]
            torch.testing.assert_close(out[b, i], (w[:, None] * f[b, near]).sum(0) / w.sum())
    # a point on a source position takes that source's value
    torch.testing.assert_close(inverse_distance_interpolate(src, src, f), f, rtol=1e-4, atol=1e-4)
