"""Building blocks shared by every pcdiff denoiser: timestep and spine conditioning, attention, MLPs.

All point tensors are ``(B, N, C)`` (points last but one, channels last). The conditioning follows
point-e (Nichol et al. 2022): the condition is a sequence of tokens that point features attend to,
and the output projection of every cross-attention starts at zero so that an untrained network
ignores the condition and training grows it in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from einops import rearrange
from torch import nn

from pcdiff.geometry.frames import line_at_height


def fourier_features(x: torch.Tensor, num_frequencies: int) -> torch.Tensor:
    """NeRF-style positional encoding ``[x, sin(2^k pi x), cos(2^k pi x)]`` for k < num_frequencies.

    Args:
        x: (..., D) coordinates (pcdiff passes normalised coordinates, roughly in [-1, 1]).
        num_frequencies: F; 0 returns ``x`` unchanged.

    Returns:
        (..., D * (2F + 1)) features.
    """
    if num_frequencies == 0:
        return x
    freqs = math.pi * 2.0 ** torch.arange(num_frequencies, device=x.device, dtype=x.dtype)  # (F,)
    angles = rearrange(x[..., None] * freqs, "... d f -> ... (d f)")
    return torch.cat([x, angles.sin(), angles.cos()], dim=-1)


def fourier_dim(dim: int, num_frequencies: int) -> int:
    """Width of :func:`fourier_features` of a ``dim``-vector."""
    return dim * (2 * num_frequencies + 1)


def num_groups(channels: int, max_groups: int = 32) -> int:
    """Largest GroupNorm group count <= max_groups that divides ``channels``."""
    return math.gcd(channels, max_groups)


class TimestepEncoder(nn.Module):
    """Diffusion timestep -> (B, dim) embedding: diffusers' sinusoidal ``Timesteps`` then its MLP."""

    def __init__(self, dim: int, frequency_dim: int = 128) -> None:
        super().__init__()
        self.frequencies = Timesteps(frequency_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.mlp = TimestepEmbedding(frequency_dim, dim)

    def forward(self, timestep: torch.Tensor | int | float, batch_size: int, device: torch.device) -> torch.Tensor:
        """Args: timestep: scalar, (1,) or (B,) integer or float timesteps. Returns (B, dim)."""
        t = torch.as_tensor(timestep, device=device)
        if t.ndim == 0 or t.shape == (1,):
            t = t.reshape(1).expand(batch_size)
        if t.shape != (batch_size,):
            raise ValueError(f"timestep: expected a scalar or shape ({batch_size},), got {tuple(t.shape)}")
        features = self.frequencies(t).to(self.mlp.linear_1.weight.dtype)  # (B, frequency_dim)
        return self.mlp(features)


class Attention(nn.Module):
    """Multi-head attention with ``scaled_dot_product_attention`` (self- or cross-attention).

    Args:
        dim: query width.
        num_heads: heads; ``dim`` must be divisible by it.
        context_dim: width of ``encoder_hidden_states`` (None: self-attention, keys from the queries).
        zero_init_output: start the output projection at zero (point-e style, used for the condition).
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, zero_init_output: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)
        if zero_init_output:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args:
            hidden_states: (B, N, dim) queries.
            encoder_hidden_states: (B, L, context_dim) keys/values, or None for self-attention.
            attention_mask: (B, L) bool, True where a key may be attended to.

        Returns:
            (B, N, dim).
        """
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q = rearrange(self.to_q(hidden_states), "b n (h d) -> b h n d", h=self.num_heads)
        k, v = rearrange(self.to_kv(context), "b l (two h d) -> two b h l d", two=2, h=self.num_heads)
        mask = None if attention_mask is None else rearrange(attention_mask, "b l -> b 1 1 l")
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, N, d)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class AttentionBlock(nn.Module):
    """Pre-norm residual attention: ``x + attn(LayerNorm(x), encoder_hidden_states)``.

    With ``context_dim`` set it is the cross-attention block through which every denoiser reads the
    spine tokens; its output projection then starts at zero.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, context_dim, zero_init_output=context_dim is not None)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim); see :class:`Attention` for the other arguments."""
        return hidden_states + self.attn(self.norm(hidden_states), encoder_hidden_states, attention_mask)


class FeedForward(nn.Module):
    """Pre-norm residual MLP ``x + W2 GELU(W1 LayerNorm(x))`` on (B, N, dim)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mult * dim), nn.GELU(), nn.Linear(mult * dim, dim))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states + self.net(hidden_states)


class ResMLP(nn.Module):
    """Timestep-conditioned residual shared MLP on point features (the point branch of every net).

    ``skip(x) + W2 SiLU(LN(W1 SiLU(LN(x)) + proj(temb)))``, applied to each point independently.

    Args:
        in_dim, out_dim: feature widths.
        temb_dim: width of the timestep embedding.
    """

    def __init__(self, in_dim: int, out_dim: int, temb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(in_dim)
        self.linear1 = nn.Linear(in_dim, out_dim)
        self.temb_proj = nn.Linear(temb_dim, out_dim)
        self.norm2 = nn.LayerNorm(out_dim)
        self.linear2 = nn.Linear(out_dim, out_dim)
        self.skip = nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """Args: x: (B, N, in_dim); temb: (B, temb_dim). Returns (B, N, out_dim)."""
        h = self.linear1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, None]
        h = self.linear2(F.silu(self.norm2(h)))
        return self.skip(x) + h


def arc_length_fraction(keypoints: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cumulative arc length along each keypoint polyline, divided by its total length.

    Args:
        keypoints: (B, K, 3) ordered keypoints.

    Returns:
        (B, K) in [0, 1]: 0 at the first keypoint, 1 at the last (all 0 for a degenerate line).
    """
    seg = (keypoints[:, 1:] - keypoints[:, :-1]).norm(dim=-1)  # (B, K-1)
    cum = torch.cat([seg.new_zeros(seg.shape[0], 1), seg.cumsum(dim=1)], dim=1)  # (B, K)
    return cum / cum[:, -1:].clamp_min(eps)


class SpineEncoder(nn.Module):
    """Spine keypoints (B, K, 3) -> tokens (B, K, dim).

    Each keypoint is embedded from Fourier features of its normalised coordinates concatenated with
    Fourier features of its arc-length fraction along the line (its position on the spine, which is
    what tells C7 from the sacrum), followed by ``num_layers`` self-attention layers between keypoints
    and a final LayerNorm.
    """

    def __init__(self, dim: int, num_layers: int = 2, num_heads: int = 4, num_frequencies: int = 6) -> None:
        super().__init__()
        self.num_frequencies = num_frequencies
        in_dim = fourier_dim(3, num_frequencies) + fourier_dim(1, num_frequencies)
        self.embed = nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.layers = nn.ModuleList(
            nn.ModuleList([AttentionBlock(dim, num_heads), FeedForward(dim)]) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        """Args: keypoints: (B, K, 3) normalised, ordered top to bottom. Returns (B, K, dim)."""
        s = arc_length_fraction(keypoints)[..., None]  # (B, K, 1)
        freqs = self.num_frequencies
        x = self.embed(torch.cat([fourier_features(keypoints, freqs), fourier_features(s, freqs)], dim=-1))
        for attn, ff in self.layers:
            x = ff(attn(x))
        return self.norm(x)


@dataclass
class Conditioning:
    """What a denoiser body receives besides the noisy points.

    Attributes:
        temb: (B, time_dim) timestep embedding.
        tokens: (B, L, cond_dim) condition tokens for cross-attention.
        token_mask: (B, L) bool, True where a token may be attended to; None means all.
        spine: (B, K, 3) the spine keypoints themselves (model space, top to bottom).
        keep: (B,) bool, False for a sample whose condition is dropped (classifier-free guidance);
            None means every sample is conditioned.
    """

    temb: torch.Tensor
    tokens: torch.Tensor
    token_mask: torch.Tensor | None
    spine: torch.Tensor | None = None
    keep: torch.Tensor | None = None


class PointInput(nn.Module):
    """Per-point input features of every denoiser: Fourier features of the coordinates and, with
    ``spine_relative``, of the point's offset from the spinal line at its own height.

    The spine-relative part (4 values: offset x, y, z and the height fraction along the line) puts the
    condition into every point's own input, where the network cannot miss it; cross-attention to the
    spine tokens stays beside it. A sample whose condition is dropped (``cond.keep`` False) gets zeros
    there, so the unconditional model of classifier-free guidance never sees the line.

    Args:
        num_frequencies: Fourier frequencies (as the denoiser's).
        spine_relative: add the spine-relative features.
    """

    def __init__(self, num_frequencies: int, spine_relative: bool = False) -> None:
        super().__init__()
        self.num_frequencies = num_frequencies
        self.spine_relative = spine_relative
        self.dim = fourier_dim(3, num_frequencies) + (fourier_dim(4, num_frequencies) if spine_relative else 0)

    def forward(self, sample: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Args: sample: (B, N, 3) noisy points; cond: needs ``spine`` when spine-relative.
        Returns (B, N, self.dim)."""
        features = fourier_features(sample, self.num_frequencies)
        if not self.spine_relative:
            return features
        if cond.spine is None:
            raise ValueError("PointInput: spine_relative features need cond.spine")
        on_line, fraction = line_at_height(cond.spine.to(sample.dtype), sample[..., 1])
        relative = torch.cat([sample - on_line, fraction[..., None]], dim=-1)  # (B, N, 4)
        relative = fourier_features(relative, self.num_frequencies)
        if cond.keep is not None:
            relative = relative * cond.keep.to(relative.dtype)[:, None, None]
        return torch.cat([features, relative], dim=-1)


class SpineConditioning(nn.Module):
    """Timestep embedding, spine tokens and the learned null tokens for classifier-free guidance.

    A sample whose ``condition_mask`` is False attends only to ``num_null_tokens`` learned tokens
    instead of its spine tokens. Whenever a mask is given, the two sequences are concatenated to
    ``K + num_null_tokens`` tokens and ``token_mask`` hides the part a sample must not see (masked keys
    get exactly zero weight), so any K works and the null sequence has its own length. Both parts stay
    in the autograd graph even when every sample is (un)conditioned, so DistributedDataParallel never
    meets an unused parameter during training with condition dropout. Without a mask (plain
    conditional inference) only the spine tokens are built.
    """

    def __init__(
        self,
        time_dim: int,
        cond_dim: int,
        spine_layers: int,
        num_heads: int,
        num_frequencies: int,
        num_null_tokens: int,
    ) -> None:
        super().__init__()
        if num_null_tokens < 1:
            raise ValueError(f"num_null_tokens must be >= 1, got {num_null_tokens}")
        self.time = TimestepEncoder(time_dim)
        self.spine = SpineEncoder(cond_dim, spine_layers, num_heads, num_frequencies)
        self.null_tokens = nn.Parameter(torch.randn(num_null_tokens, cond_dim) * 0.02)

    def forward(
        self,
        timestep: torch.Tensor | int | float,
        encoder_hidden_states: torch.Tensor,
        condition_mask: torch.Tensor | None,
    ) -> Conditioning:
        """Args:
            timestep: scalar or (B,).
            encoder_hidden_states: (B, K, 3) spine keypoints (normalised frame).
            condition_mask: (B,) bool, False -> use the null tokens for that sample; None -> all True.
        """
        batch_size = encoder_hidden_states.shape[0]
        temb = self.time(timestep, batch_size, encoder_hidden_states.device)
        if condition_mask is None:
            return Conditioning(temb, self.spine(encoder_hidden_states), None, encoder_hidden_states)
        keep = condition_mask.to(device=encoder_hidden_states.device, dtype=torch.bool)
        null = self.null_tokens.expand(batch_size, -1, -1)  # (B, Ln, D)
        tokens = torch.cat([self.spine(encoder_hidden_states), null], dim=1)  # (B, K + Ln, D)
        num_spine = encoder_hidden_states.shape[1]
        mask = torch.cat(
            [keep[:, None].expand(-1, num_spine), ~keep[:, None].expand(-1, null.shape[1])], dim=1
        )  # (B, K + Ln)
        return Conditioning(temb, tokens, mask, encoder_hidden_states, keep)


def plane_offsets(points: torch.Tensor, num_neighbors: int) -> torch.Tensor:
    """Each point's offset from the plane through its k nearest neighbours, along that plane's normal.

    The plane is the least-squares fit (centroid and smallest-eigenvalue eigenvector of the
    neighbours' covariance, as in Hoppe et al. 1992 and Pauly et al. 2002's surface variation). For a
    point scattered off a thin sheet, ``-plane_offsets`` is the move back onto it: the direction of the
    score of a surface distribution at small noise. The point itself is left out of its own fit. No
    gradient flows through it.

    Args:
        points: (B, N, 3) points.
        num_neighbors: k (clipped to N - 1); fewer than 3 neighbours give zeros.

    Returns:
        (B, N, 3) ``((p - centroid) . n) n`` in the points' units.
    """
    k = min(num_neighbors, points.shape[1] - 1)
    if k < 3:
        return torch.zeros_like(points)
    from pcdiff.ops import gather_points, knn_points  # ops import the optional compiled kernels lazily

    with torch.no_grad():
        pts = points.detach()
        idx = knn_points(pts, pts, k + 1).idx[..., 1:]  # (B, N, k): the point itself dropped
        neighbours = gather_points(pts, idx)  # (B, N, k, 3)
        centroid = neighbours.mean(dim=2)  # (B, N, 3)
        centred = (neighbours - centroid[:, :, None]).double()
        cov = torch.einsum("bnki,bnkj->bnij", centred, centred) / k  # (B, N, 3, 3)
        normal = torch.linalg.eigh(cov).eigenvectors[..., 0].to(pts.dtype)  # (B, N, 3), smallest eigenvalue
        distance = ((pts - centroid) * normal).sum(dim=-1, keepdim=True)  # (B, N, 1)
        return distance * normal


class SurfaceSkip(nn.Module):
    """A geometric skip connection: ``gate(t) * plane_offsets(x_t)`` added to a denoiser's output.

    A back is a thin sheet, and at small noise the best prediction of a point's noise is its offset
    from the sheet divided by the noise level. A network has to learn that precision from data, which
    takes far more steps than a CPU allows (its backs stay clouds ~10 mm thick). This block hands it
    the local plane fit (:func:`plane_offsets`) and learns only the scalar gain for each timestep,
    starting at zero (so an untrained denoiser is unchanged). The network body still predicts
    everything else: the offset is a hint it adds to, not a replacement.

    Args:
        temb_dim: width of the timestep embedding.
        num_neighbors: k of the plane fit (at ``reference_points`` points, when that is given).
        reference_points: None -> k is ``num_neighbors`` at any point count. An int N_ref -> k scales with the
            cloud's N as ``round(num_neighbors * N / N_ref)`` (at least 3), so the plane is fitted over the same
            patch of back, in mm², whatever the density: the learned gain then means the same thing at the
            trained and at other point counts.
    """

    def __init__(self, temb_dim: int, num_neighbors: int, reference_points: int | None = None) -> None:
        super().__init__()
        if num_neighbors < 3:
            raise ValueError(f"SurfaceSkip: num_neighbors must be >= 3, got {num_neighbors}")
        if reference_points is not None and reference_points < 1:
            raise ValueError(f"SurfaceSkip: reference_points must be >= 1 or None, got {reference_points}")
        self.num_neighbors = num_neighbors
        self.reference_points = reference_points
        self.gate = nn.Sequential(nn.SiLU(), nn.Linear(temb_dim, temb_dim), nn.SiLU(), nn.Linear(temb_dim, 1))
        nn.init.zeros_(self.gate[-1].weight)
        nn.init.zeros_(self.gate[-1].bias)

    def forward(self, sample: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """Args: sample: (B, N, 3) noisy points; temb: (B, temb_dim). Returns (B, N, 3)."""
        return self.gate(temb)[:, None, :] * plane_offsets(sample, self.neighbors_at(sample.shape[1]))

    def neighbors_at(self, num_points: int) -> int:
        """k of the plane fit for a cloud of ``num_points`` points (see ``reference_points``)."""
        if self.reference_points is None:
            return self.num_neighbors
        return max(3, round(self.num_neighbors * num_points / self.reference_points))
