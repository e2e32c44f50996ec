"""Neural-network building blocks, one module per idea.

* attention — ``sdpa`` (scaled dot-product attention and its two kernels), ``attention`` (the one
  attention module, its kernel chosen by name), ``masks``, ``score_scaling`` (why scores are divided by
  √d_k), ``kv_cache``;
* positions — ``positional`` (sinusoidal, learned), ``rope`` (rotary embedding), ``relative_bias``
  (ALiBi, T5's buckets);
* the block — ``norms``, ``activations``, ``ffn``, ``moe``, ``block`` (the one configurable
  Transformer block);
* efficient attention — ``flash`` (FlashAttention's tiling), ``mla`` (multi-head latent attention),
  ``linformer``.

Models (:mod:`companion.models`) are built from these.
"""

from companion.nn.attention import (
    CrossAttention,
    GroupedQueryAttention,
    MultiHeadAttention,
    merge_heads,
    split_heads,
)
from companion.nn.block import TransformerBlock, TransformerStack
from companion.nn.ffn import FeedForward, GLUFeedForward, make_ffn
from companion.nn.flash import flash_attention, online_softmax
from companion.nn.kv_cache import KVCache, kv_cache_bytes
from companion.nn.masks import block_sparse, causal, combine, padding, sliding_window
from companion.nn.mla import MultiHeadLatentAttention
from companion.nn.moe import MoE
from companion.nn.norms import LayerNorm, RMSNorm, make_norm
from companion.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from companion.nn.relative_bias import ALiBi, T5RelativeBias, alibi_slopes
from companion.nn.rope import RotaryEmbedding, apply_rotary
from companion.nn.sdpa import scaled_dot_product_attention, softmax

__all__ = [
    "ALiBi",
    "CrossAttention",
    "FeedForward",
    "GLUFeedForward",
    "GroupedQueryAttention",
    "KVCache",
    "LayerNorm",
    "LearnedPositionalEmbedding",
    "MoE",
    "MultiHeadAttention",
    "MultiHeadLatentAttention",
    "RMSNorm",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "T5RelativeBias",
    "TransformerBlock",
    "TransformerStack",
    "alibi_slopes",
    "apply_rotary",
    "block_sparse",
    "causal",
    "combine",
    "flash_attention",
    "kv_cache_bytes",
    "make_ffn",
    "make_norm",
    "merge_heads",
    "online_softmax",
    "padding",
    "scaled_dot_product_attention",
    "sliding_window",
    "softmax",
    "split_heads",
]
