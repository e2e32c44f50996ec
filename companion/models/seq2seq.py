"""An encoder–decoder Transformer (编码器-解码器): T5 and BART as two configurations of one model.

Sutskever et al. (2014) factorize ``p(y | x) = Π_t p(y_t | y_<t, Enc(x))``; Vaswani et al. (2017) built
both halves from attention::

    src ──► embed (+ positions) ──► L_enc × block (bidirectional) ──► memory
    tgt ──► embed (+ positions) ──► L_dec × block (causal self-attn., cross-attn. to memory) ──► logits

Every layer is the one :class:`companion.nn.block.TransformerBlock`: an encoder layer with
``causal=False``, a decoder layer with ``cross_attention=True`` (queries from the decoder, keys and
values from the encoder's output of the same example). The two published recipes differ only in
configuration (:meth:`Seq2SeqConfig.t5`, :meth:`Seq2SeqConfig.bart`):

=================  ==========================================  ==========================================
                   T5 (Raffel et al., 2020)                    BART (Lewis et al., 2020)
=================  ==========================================  ==========================================
positions          bucketed relative bias, per stack, shared   learned absolute table (offset 2)
                   by its layers (``T5RelativeBias``)
norm               RMSNorm, pre-norm, final norm per stack     LayerNorm, post-norm, + embedding LN
FFN                ReLU (v1.1: GeGLU with the tanh GELU)       GELU
biases             none                                        everywhere, + a final logits bias
score scale        1 (folded into the initialization)          ``1/√d_h``
output             tied, decoder state × ``d^-1/2``            tied
=================  ==========================================  ==========================================

With tiny random Hugging Face models and copied weights (:meth:`Seq2Seq.from_hf`) the logits equal
``T5ForConditionalGeneration``'s and ``BartForConditionalGeneration``'s (``tests/test_seq2seq.py``).
Generation goes through the same :func:`companion.generate.generate` as every decoder:
:meth:`Seq2Seq.decoder_for` binds a source sentence and returns a decoder-only view that follows the
``model(idx, kv_cache=…) -> (logits, loss)`` protocol.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from companion._validate import check_positive_int, check_tensor
from companion.losses import lm_loss
from companion.nn.block import TransformerBlock
from companion.nn.kv_cache import KVCache
from companion.nn.norms import make_norm
from companion.nn.positional import LearnedPositionalEmbedding
from companion.nn.relative_bias import T5RelativeBias

__all__ = ["Seq2Seq", "Seq2SeqConfig"]


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Hyperparameters of a :class:`Seq2Seq` model.

    Attributes:
        vocab_size: ``V`` (one embedding shared by encoder, decoder and output layer).
        d_model: the width ``d``.
        n_heads: heads (``d_h = d_model / n_heads``).
        d_ff: the FFN width.
        n_encoder_layers: the encoder's depth.
        n_decoder_layers: the decoder's depth.
        position: ``"relative"`` (T5's bucketed bias) or ``"learned"`` (an absolute table).
        num_buckets: buckets of the relative bias.
        max_distance: the relative bias's largest distinguished distance.
        max_positions: rows of the learned table.
        position_offset: the row of position 0 in the learned table (BART reserves 2 rows).
        norm: ``"rmsnorm"`` or ``"layernorm"``.
        norm_position: ``"pre"`` or ``"post"``.
        ffn: an FFN kind of :func:`~companion.nn.ffn.make_ffn`.
        activation: its activation (None: the kind's default).
        bias: biases in every linear layer and LayerNorm.
        embedding_norm: a norm after the embeddings (BART), one per stack.
        final_norm: a norm after each stack (pre-norm models).
        score_scale: the attention score scale (None: ``1/√d_h``).
        output_scale: the decoder state is multiplied by this before the tied output layer (T5: ``d^-1/2``).
        final_logits_bias: a (zero-initialized) bias added to the logits (BART).
        eps: of the norms.
        dropout: in training.
        pad_token_id: the padding id.
        eos_token_id: the end-of-sequence id.
        decoder_start_token_id: the first decoder input.
        fused_attention: PyTorch's fused attention kernel.
    """

    vocab_size: int = 32128
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    position: str = "relative"
    num_buckets: int = 32
    max_distance: int = 128
    max_positions: int = 512
    position_offset: int = 0
    norm: str = "rmsnorm"
    norm_position: str = "pre"
    ffn: str = "relu"
    activation: str | None = None
    bias: bool = False
    embedding_norm: bool = False
    final_norm: bool = True
    score_scale: float | None = 1.0
    output_scale: float | None = None
    final_logits_bias: bool = False
    eps: float = 1e-6
    dropout: float = 0.1
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0
    fused_attention: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "d_ff", "n_encoder_layers", "n_decoder_layers"):
            check_positive_int(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.position not in ("relative", "learned"):
            raise ValueError(f"position: expected 'relative' or 'learned', got {self.position!r}")
        if self.norm_position not in ("pre", "post"):
            raise ValueError(f"norm_position: expected 'pre' or 'post', got {self.norm_position!r}")

    @property
    def block_size(self) -> int:
        """The longest target the learned table covers (the relative bias has no limit)."""
        return self.max_positions

    @classmethod
    def t5(cls, **overrides: Any) -> Seq2SeqConfig:
        """T5 (v1.0, ``t5-small`` sizes by default): relative bias, pre-RMSNorm, ReLU, no biases."""
        base = cls()
        out = dataclasses.replace(base, **overrides)
        if "output_scale" not in overrides:
            out = dataclasses.replace(out, output_scale=out.d_model**-0.5)
        return out

    @classmethod
    def bart(cls, **overrides: Any) -> Seq2SeqConfig:
        """BART (``bart-base`` sizes by default): learned positions, post-LayerNorm, GELU, biases."""
        base = cls(
            vocab_size=50265, d_model=768, n_heads=12, d_ff=3072, position="learned", max_positions=1024,
            position_offset=2, norm="layernorm", norm_position="post", ffn="mlp", activation="gelu",
            bias=True, embedding_norm=True, final_norm=False, score_scale=None, final_logits_bias=True,
            eps=1e-5, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2,
        )  # fmt: skip
        return dataclasses.replace(base, **overrides)


class _Stack(nn.Module):
    """One stack: embeddings' positions and norm, the blocks, the final norm."""

    def __init__(self, c: Seq2SeqConfig, n_layers: int, decoder: bool) -> None:
        super().__init__()
        self.position = (
            LearnedPositionalEmbedding(c.max_positions + c.position_offset, c.d_model)
            if c.position == "learned"
            else T5RelativeBias(
                c.n_heads, num_buckets=c.num_buckets, max_distance=c.max_distance, bidirectional=not decoder
            )
        )
        self.embedding_norm = make_norm(c.norm, c.d_model, c.eps, **_norm_kw(c)) if c.embedding_norm else None
        self.layers = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.n_heads,
                d_hidden=c.d_ff,
                norm=c.norm,
                norm_position=c.norm_position,
                ffn=c.ffn,
                activation=c.activation,
                dropout=c.dropout,
                bias=c.bias,
                causal=decoder,
                cross_attention=decoder,
                eps=c.eps,
                kernel="sdpa" if c.fused_attention else "explicit",
                scale=c.score_scale,
                layer_idx=i,
            )
            for i in range(n_layers)
        )
        self.final_norm = make_norm(c.norm, c.d_model, c.eps, **_norm_kw(c)) if c.final_norm else None
        self.offset = c.position_offset

    def forward(
        self,
        x: torch.Tensor,
        *,
        key_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:
        t = x.shape[1]
        past = 0 if kv_cache is None else kv_cache.length
        bias = None
        if isinstance(self.position, LearnedPositionalEmbedding):
            x = self.position(x, past + self.offset)
        else:  # one bias for every layer of the stack, as T5 computes it in its first layer
            bias = self.position.bias(t, past + t, offset=past).to(x.dtype)[None]
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        for block in self.layers:
            x = block(
                x,
                key_mask=key_mask,
                attn_bias=bias,
                kv_cache=kv_cache,
                context=context,
                context_mask=context_mask,
            )
        return x if self.final_norm is None else self.final_norm(x)


def _norm_kw(c: Seq2SeqConfig) -> dict[str, Any]:
    return {"fused": True, **({"bias": c.bias} if c.norm == "layernorm" else {})}


class Seq2Seq(nn.Module):
    """An encoder–decoder language model (T5 or BART by configuration).

    Args:
        config: a :class:`Seq2SeqConfig`.

    Attributes:
        embed: the shared token embedding (also the output layer).
        encoder: the encoder stack (position scheme, blocks, final norm).
        decoder: the decoder stack.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"config: expected a Seq2SeqConfig, got {type(config).__name__}")
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.encoder = _Stack(c, c.n_encoder_layers, decoder=False)
        self.decoder = _Stack(c, c.n_decoder_layers, decoder=True)
        self.register_buffer("logits_bias", torch.zeros(c.vocab_size) if c.final_logits_bias else None)

    def _ids(self, name: str, ids: torch.Tensor) -> torch.Tensor:
        check_tensor(name, ids, ndim=2)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size):
            raise ValueError(f"{name}: ids must be in [0, {self.config.vocab_size})")
        return ids

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder output ``(B, T_src, d)`` for ``src (B, T_src)``; ``src_mask``: True at real tokens."""
        key_mask = None if src_mask is None else src_mask.bool()
        return self.encoder(self.embed(self._ids("src", src)), key_mask=key_mask)

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Next-token logits ``(B, T_tgt, V)`` for the decoder input ``tgt`` given the encoder output."""
        context_mask = None if src_mask is None else src_mask.bool()
        h = self.decoder(
            self.embed(self._ids("tgt", tgt)), context=memory, context_mask=context_mask, kv_cache=kv_cache
        )
        if self.config.output_scale is not None:
            h = h * self.config.output_scale
        logits = h @ self.embed.weight.T
        return logits if self.logits_bias is None else logits + self.logits_bias

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits (B, T_tgt, V), loss)``: teacher forcing, ``tgt`` the shifted-right targets; the loss
        is the mean cross-entropy against ``labels`` (``-100`` ignored), None without labels."""
        logits = self.decode(tgt, self.encode(src, src_mask), src_mask)
        return logits, (None if labels is None else lm_loss(logits, labels))

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """A cache for the decoder's self-attention (the cross-attention reads the fixed memory)."""
        c, p = self.config, self.embed.weight
        return KVCache(
            c.n_decoder_layers,
            batch_size,
            c.n_heads,
            c.d_model // c.n_heads,
            max_len,
            dtype=p.dtype,
            device=p.device,
        )

    def decoder_for(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> nn.Module:
        """A decoder-only view with ``src`` encoded once: ``view(tgt, kv_cache=…) -> (logits, None)``,
        for :func:`companion.generate.generate` (start it from ``decoder_start_token_id``)."""
        return _BoundDecoder(self, self.encode(src, src_mask), src_mask)

    @classmethod
    def from_hf(cls, hf_model: Any, **overrides: Any) -> Seq2Seq:
        """An equal model from a Hugging Face ``T5ForConditionalGeneration`` (ReLU or gated-GELU) or
        ``BartForConditionalGeneration`` (weights copied)."""
        kind = hf_model.config.model_type
        if kind == "t5":
            return _from_hf_t5(cls, hf_model, **overrides)
        if kind == "bart":
            return _from_hf_bart(cls, hf_model, **overrides)
        raise ValueError(f"hf_model: expected a t5 or bart model, got model_type {kind!r}")


class _BoundDecoder(nn.Module):
    def __init__(self, model: Seq2Seq, memory: torch.Tensor, src_mask: torch.Tensor | None) -> None:
        super().__init__()
        self.model, self.memory, self.src_mask, self.config = model, memory, src_mask, model.config

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        return self.model.new_kv_cache(batch_size, max_len)

    def forward(
        self, tgt: torch.Tensor, targets: torch.Tensor | None = None, *, kv_cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        memory, mask = self.memory, self.src_mask
        if memory.shape[0] == 1 and tgt.shape[0] > 1:  # one source, several beams or samples
            memory = memory.expand(tgt.shape[0], -1, -1)
            mask = None if mask is None else mask.expand(tgt.shape[0], -1)
        logits = self.model.decode(tgt, memory, mask, kv_cache=kv_cache)
        return logits, (None if targets is None else lm_loss(logits, targets))


def _copy(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("logits_bias")]
    if missing or unexpected:
        raise ValueError(f"hf_model: weights missing for {missing[:5]}, unused {unexpected[:5]}")


def _from_hf_t5(cls: type[Seq2Seq], hf: Any, **overrides: Any) -> Seq2Seq:
    hc = hf.config
    if hc.d_kv * hc.num_heads != hc.d_model:
        raise ValueError(
            f"hf_model: d_kv·num_heads = {hc.d_kv * hc.num_heads} must equal d_model = {hc.d_model}"
        )
    gated = hc.is_gated_act
    act = {"relu": "relu", "gelu_new": "gelu_tanh", "gelu": "gelu"}[hc.dense_act_fn]
    fields = dict(
        vocab_size=hc.vocab_size, d_model=hc.d_model, n_heads=hc.num_heads, d_ff=hc.d_ff,
        n_encoder_layers=hc.num_layers, n_decoder_layers=hc.num_decoder_layers,
        num_buckets=hc.relative_attention_num_buckets, max_distance=hc.relative_attention_max_distance,
        ffn="geglu" if gated else "relu", activation=act, eps=hc.layer_norm_epsilon, dropout=hc.dropout_rate,
        pad_token_id=hc.pad_token_id, eos_token_id=hc.eos_token_id,
        decoder_start_token_id=hc.decoder_start_token_id,
        output_scale=hc.d_model**-0.5 if hc.tie_word_embeddings else None,
    )  # fmt: skip
    if not hc.tie_word_embeddings:
        raise ValueError("hf_model: an untied T5 output layer (T5 v1.1) is not supported")
    fields.update(overrides)
    model = cls(Seq2SeqConfig.t5(**fields))
    sd = hf.state_dict()
    state = {"embed.weight": sd["shared.weight"]}
    for side, n in (("encoder", hc.num_layers), ("decoder", hc.num_decoder_layers)):
        state[f"{side}.position.embedding.weight"] = sd[
            f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
        ]
        state[f"{side}.final_norm.weight"] = sd[f"{side}.final_layer_norm.weight"]
        for i in range(n):
            src, dst = f"{side}.block.{i}.layer.", f"{side}.layers.{i}."
            attns = [("0.SelfAttention", "attn", "0.layer_norm", "ln_1")]
            if side == "decoder":
                attns.append(("1.EncDecAttention", "cross_attn", "1.layer_norm", "ln_cross"))
            for theirs, ours, their_norm, our_norm in attns:
                for a, b in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj")):
                    state[f"{dst}{ours}.{b}.weight"] = sd[f"{src}{theirs}.{a}.weight"]
                state[f"{dst}{our_norm}.weight"] = sd[f"{src}{their_norm}.weight"]
            ff = f"{src}{len(attns)}."
            state[f"{dst}ln_2.weight"] = sd[f"{ff}layer_norm.weight"]
            if gated:
                state[f"{dst}mlp.w_gate.weight"] = sd[f"{ff}DenseReluDense.wi_0.weight"]
                state[f"{dst}mlp.w_up.weight"] = sd[f"{ff}DenseReluDense.wi_1.weight"]
                state[f"{dst}mlp.w_down.weight"] = sd[f"{ff}DenseReluDense.wo.weight"]
            else:
                state[f"{dst}mlp.fc_in.weight"] = sd[f"{ff}DenseReluDense.wi.weight"]
                state[f"{dst}mlp.fc_out.weight"] = sd[f"{ff}DenseReluDense.wo.weight"]
    _copy(model, state)
    return model.to(dtype=hf.dtype).eval()


def _from_hf_bart(cls: type[Seq2Seq], hf: Any, **overrides: Any) -> Seq2Seq:
    hc = hf.config
    if hc.scale_embedding:
        raise ValueError("hf_model: scale_embedding=True is not supported")
    if hc.encoder_attention_heads != hc.decoder_attention_heads or hc.encoder_ffn_dim != hc.decoder_ffn_dim:
        raise ValueError("hf_model: the encoder and decoder must have the same heads and FFN width")
    act = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh"}[hc.activation_function]
    fields = dict(
        vocab_size=hc.vocab_size, d_model=hc.d_model, n_heads=hc.encoder_attention_heads,
        d_ff=hc.encoder_ffn_dim, n_encoder_layers=hc.encoder_layers, n_decoder_layers=hc.decoder_layers,
        max_positions=hc.max_position_embeddings, activation=act, dropout=hc.dropout,
        pad_token_id=hc.pad_token_id, eos_token_id=hc.eos_token_id,
        decoder_start_token_id=hc.decoder_start_token_id,
    )  # fmt: skip
    fields.update(overrides)
    model = cls(Seq2SeqConfig.bart(**fields))
    sd = hf.state_dict()
    state = {"embed.weight": sd["model.shared.weight"], "logits_bias": sd["final_logits_bias"][0]}
    for side, n in (("encoder", hc.encoder_layers), ("decoder", hc.decoder_layers)):
        pre = f"model.{side}."
        state[f"{side}.position.weight"] = sd[pre + "embed_positions.weight"]
        for p in ("weight", "bias"):
            state[f"{side}.embedding_norm.{p}"] = sd[f"{pre}layernorm_embedding.{p}"]
        for i in range(n):
            src, dst = f"{pre}layers.{i}.", f"{side}.layers.{i}."
            names = {
                "self_attn.q_proj": "attn.q_proj", "self_attn.k_proj": "attn.k_proj",
                "self_attn.v_proj": "attn.v_proj", "self_attn.out_proj": "attn.out_proj",
                "self_attn_layer_norm": "ln_1", "fc1": "mlp.fc_in", "fc2": "mlp.fc_out",
                "final_layer_norm": "ln_2",
            }  # fmt: skip
            if side == "decoder":
                names.update(
                    {
                        f"encoder_attn.{p}": f"cross_attn.{p}"
                        for p in ("q_proj", "k_proj", "v_proj", "out_proj")
                    }
                )
                names["encoder_attn_layer_norm"] = "ln_cross"
            for theirs, ours in names.items():
                for p in ("weight", "bias"):
                    state[f"{dst}{ours}.{p}"] = sd[f"{src}{theirs}.{p}"]
    _copy(model, state)
    return model.to(dtype=hf.dtype).eval()
