"""Neural-network building blocks: attention and masks (later: positional encodings, norms, FFNs)."""

from companion.nn.attention import (
    CrossAttention,
    MultiHeadAttention,
    merge_heads,
    scaled_dot_product_attention,
    softmax,
    split_heads,
)
from companion.nn.masks import causal, combine, padding

__all__ = [
    "CrossAttention",
    "MultiHeadAttention",
    "causal",
    "combine",
    "merge_heads",
    "padding",
    "scaled_dot_product_attention",
    "softmax",
    "split_heads",
]
