"""BERT: a bidirectional Transformer encoder built from the companion's one block, and its loader for
the pinned all-MiniLM-L6-v2 weights.

Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"
(2019)::

    ids, segments ──► word + position + token-type embeddings ──► LayerNorm ──► L × block ──► hidden
                                                                       pooler: tanh(W h_[CLS] + b)
    block (Post-LN):  x ← LN(x + attn(x));   x ← LN(x + FFN(x)),   FFN = GELU(x W₁ + b₁) W₂ + b₂

Every block is a :class:`companion.nn.block.TransformerBlock` with ``norm_position="post"``,
``causal=False`` and the exact (erf) GELU; the position table is
:class:`~companion.nn.positional.LearnedPositionalEmbedding`. Padding is a ``key_mask``: no query attends
to a padding key (the padding positions' own outputs are computed and ignored).

:func:`load_bert` reads a Hugging Face BERT folder — ``config.json``, ``model.safetensors`` and the
WordPiece ``vocab.txt`` — by default the :mod:`companion.hub` asset all-MiniLM-L6-v2 (6 layers,
d = 384, 12 heads); its last hidden state equals ``transformers.BertModel``'s on the same files
(``tests/test_bert.py``). :func:`sentence_embeddings` is the sentence-transformers recipe that model was
trained for: the mean of the token states over the real tokens, L2-normalized.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from companion._validate import check_positive_int, check_tensor
from companion.losses import lm_loss
from companion.nn.block import TransformerBlock
from companion.nn.norms import make_norm
from companion.nn.positional import LearnedPositionalEmbedding

__all__ = [
    "BertConfig",
    "BertEmbeddings",
    "BertForPreTraining",
    "BertModel",
    "batch_encode",
    "encode_pair",
    "load_bert",
    "mean_pool",
    "mlm_mask",
    "nsp_pairs",
    "segment_ids",
    "sentence_embeddings",
]


@dataclass(frozen=True)
class BertConfig:
    """Hyperparameters of a :class:`BertModel`; field names follow Hugging Face's ``BertConfig``.

    Attributes:
        vocab_size: ``V``.
        hidden_size: ``d``.
        num_hidden_layers: ``L``.
        num_attention_heads: ``H``.
        intermediate_size: the FFN width ``d_ff`` (BERT: ``4d``).
        max_position_embeddings: rows of the learned position table (512).
        type_vocab_size: segment types (2: sentence A and B).
        layer_norm_eps: of every LayerNorm (MiniLM: 1e-12).
        hidden_act: ``"gelu"`` (exact erf, BERT's) or ``"gelu_tanh"``.
        hidden_dropout_prob: dropout on the embeddings and sublayer outputs in training.
        attention_probs_dropout_prob: dropout on the attention weights in training.
        pad_token_id: id of ``[PAD]``.
        add_pooler: include the ``[CLS]`` pooler ``tanh(W h + b)`` (NSP's input).
        fused_attention: PyTorch's fused ``scaled_dot_product_attention`` (else the explicit kernel).
        initializer_range: the standard deviation of the initial weights (BERT: 0.02).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int = 0
    add_pooler: bool = True
    fused_attention: bool = True
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        for name in (
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size",
        ):  # fmt: skip
            check_positive_int(name, getattr(self, name))
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        if self.hidden_act not in ("gelu", "gelu_tanh"):
            raise ValueError(f"hidden_act: expected 'gelu' or 'gelu_tanh', got {self.hidden_act!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps: expected a number > 0, got {self.layer_norm_eps!r}")
        if not self.initializer_range > 0:
            raise ValueError(f"initializer_range: expected a number > 0, got {self.initializer_range!r}")

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], **overrides: Any) -> BertConfig:
        """From a Hugging Face ``config.json`` (unknown keys ignored; ``hidden_act`` ``"gelu_new"`` is
        the tanh GELU)."""
        if d.get("model_type", "bert") != "bert":
            raise ValueError(f"config: expected model_type 'bert', got {d.get('model_type')!r}")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(
                f"config: only absolute positions are supported, got {d['position_embedding_type']!r}"
            )
        act = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}.get(
            d.get("hidden_act", "gelu")
        )
        if act is None:
            raise ValueError(f"config: hidden_act {d.get('hidden_act')!r} is not supported")
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in d.items() if k in names}
        fields["hidden_act"] = act
        fields.update(overrides)
        return cls(**fields)


@torch.no_grad()
def _init_bert_(module: nn.Module, std: float) -> None:
    """BERT's initialization (Devlin et al.'s code, as in ``transformers``): every linear and embedding
    weight ``~ N(0, std²)``, biases 0, LayerNorm ``γ = 1, β = 0``, the padding row 0. Without it a
    model trained from scratch starts with logits of size ``√d`` (PyTorch's ``N(0, 1)`` embeddings)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding, LearnedPositionalEmbedding)):
            m.weight.normal_(0.0, std)
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.fill_(1.0)
            if m.bias is not None:
                m.bias.zero_()


class BertEmbeddings(nn.Module):
    """BERT's input layer: ``E = LN(E_tok[x] + E_seg[s] + E_pos[p])``, each row a token's vector.

    Args:
        vocab_size: rows of the token table.
        max_len: rows of the learned position table (the longest input).
        d_model: the width ``d``.
        n_segments: rows of the segment (token-type) table: 2 for sentence A and B.
        eps: the LayerNorm's epsilon (BERT: 1e-12).
        pad_token_id: the token whose row gets no gradient (``[PAD]``).
        device, dtype: of the parameters.

    Attributes:
        word_embeddings: the ``nn.Embedding`` token table.
        position_embeddings: a :class:`~companion.nn.positional.LearnedPositionalEmbedding`.
        token_type_embeddings: the ``nn.Embedding`` segment table.
        norm: the LayerNorm after the sum.
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        d_model: int,
        n_segments: int = 2,
        eps: float = 1e-12,
        *,
        pad_token_id: int | None = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        check_positive_int("n_segments", n_segments)
        self.word_embeddings = nn.Embedding(vocab_size, d_model, padding_idx=pad_token_id, **kw)
        self.position_embeddings = LearnedPositionalEmbedding(max_len, d_model, **kw)
        self.token_type_embeddings = nn.Embedding(n_segments, d_model, **kw)
        self.norm = make_norm("layernorm", d_model, eps, fused=True, **kw)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T)`` ids and segment ids (default all 0, sentence A) → ``(B, T, d)``.

        Raises:
            ValueError: segment ids outside ``[0, n_segments)``, or shapes that differ.
        """
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif not torch.compiler.is_compiling():
            if token_type_ids.shape != input_ids.shape:
                raise ValueError(
                    f"token_type_ids: expected the shape of input_ids {tuple(input_ids.shape)}, "
                    f"got {tuple(token_type_ids.shape)}"
                )
            n = self.token_type_embeddings.num_embeddings
            if token_type_ids.numel() and not (
                0 <= int(token_type_ids.min()) and int(token_type_ids.max()) < n
            ):
                raise ValueError(
                    f"token_type_ids: expected segment ids in [0, {n}), got min {int(token_type_ids.min())}, "
                    f"max {int(token_type_ids.max())}"
                )
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.norm(self.position_embeddings(x))


class BertModel(nn.Module):
    """A BERT encoder.

    Args:
        config: a :class:`BertConfig`.
        device, dtype: of the parameters (``device="meta"`` allocates nothing; the loader assigns them).

    Attributes:
        embeddings: the :class:`BertEmbeddings` (token + segment + position, then LayerNorm).
        layers: ``L`` Post-LN :class:`~companion.nn.block.TransformerBlock` s.
        pooler: ``nn.Linear(d, d)`` (None without ``add_pooler``).
    """

    def __init__(
        self,
        config: BertConfig,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config: expected a BertConfig, got {type(config).__name__}")
        self.config = c = config
        kw = {"device": device, "dtype": dtype}
        self.embeddings = BertEmbeddings(
            c.vocab_size, c.max_position_embeddings, c.hidden_size, c.type_vocab_size, c.layer_norm_eps,
            pad_token_id=c.pad_token_id, **kw,
        )  # fmt: skip
        self.drop = nn.Dropout(c.hidden_dropout_prob)
        kernel = "sdpa" if c.fused_attention else "explicit"
        self.layers = nn.ModuleList(
            TransformerBlock(
                c.hidden_size,
                c.num_attention_heads,
                d_hidden=c.intermediate_size,
                norm="layernorm",
                norm_position="post",
                ffn="mlp",
                activation=c.hidden_act,
                dropout=c.hidden_dropout_prob,
                bias=True,
                causal=False,
                eps=c.layer_norm_eps,
                kernel=kernel,
                fused_norm=True,
                **kw,
            )
            for _ in range(c.num_hidden_layers)
        )
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size, **kw) if c.add_pooler else None
        if str(device) != "meta":
            _init_bert_(self, c.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode a batch.

        Args:
            input_ids: ``(B, T)`` WordPiece ids.
            attention_mask: ``(B, T)`` 1/True at real tokens, 0/False at padding (default: all real).
            token_type_ids: ``(B, T)`` segment ids (default: all 0, sentence A).

        Returns:
            ``(last_hidden_state (B, T, d), pooled (B, d) or None)``.
        """
        check_tensor("input_ids", input_ids, ndim=2)
        b, t = input_ids.shape
        c = self.config
        if not torch.compiler.is_compiling() and input_ids.numel():
            lo, hi = int(input_ids.min()), int(input_ids.max())
            if lo < 0 or hi >= c.vocab_size:
                raise ValueError(f"input_ids: ids must be in [0, {c.vocab_size}), got min {lo}, max {hi}")
        key_mask = None
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (b, t):
                raise ValueError(
                    f"attention_mask: expected shape (B, T)=({b}, {t}), got {tuple(attention_mask.shape)}"
                )
            key_mask = attention_mask.bool()
            if bool((~key_mask).all(dim=1).any()):
                raise ValueError("attention_mask: a sequence has no real token (every key would be masked)")
            if bool(key_mask.all()):
                key_mask = None  # nothing to mask: the fused kernel's unmasked path is faster
        x = self.embeddings(input_ids, token_type_ids)
        if self.training and self.drop.p > 0:
            x = self.drop(x)
        for block in self.layers:
            x = block(x, key_mask=key_mask)
        pooled = None if self.pooler is None else torch.tanh(self.pooler(x[:, 0]))
        return x, pooled


_HF_LAYER_NAMES = {
    "attention.self.query": "attn.q_proj",
    "attention.self.key": "attn.k_proj",
    "attention.self.value": "attn.v_proj",
    "attention.output.dense": "attn.out_proj",
    "attention.output.LayerNorm": "ln_1",
    "intermediate.dense": "mlp.fc_in",
    "output.dense": "mlp.fc_out",
    "output.LayerNorm": "ln_2",
}


def _companion_name(hf_name: str) -> str | None:
    """``encoder.layer.3.attention.self.query.weight`` → ``layers.3.attn.q_proj.weight`` (None: skip)."""
    name = hf_name.removeprefix("bert.")
    fixed = {
        "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight": "embeddings.norm.weight",
        "embeddings.LayerNorm.bias": "embeddings.norm.bias",
        "pooler.dense.weight": "pooler.weight",
        "pooler.dense.bias": "pooler.bias",
    }
    if name in fixed:
        return fixed[name]
    if name == "embeddings.position_ids":
        return None  # a buffer of 0 … 511, not a weight
    parts = name.split(".")
    if len(parts) >= 5 and parts[0] == "encoder" and parts[1] == "layer":
        inner, leaf = ".".join(parts[3:-1]), parts[-1]
        if inner in _HF_LAYER_NAMES:
            return f"layers.{parts[2]}.{_HF_LAYER_NAMES[inner]}.{leaf}"
    return None


def load_bert(
    path: str | Path | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    **config_overrides: Any,
) -> tuple[BertModel, Any]:
    """Load a Hugging Face BERT folder: the model (in eval mode) and its WordPiece tokenizer.

    Args:
        path: a folder with ``config.json``, ``model.safetensors`` and ``vocab.txt``; default the pinned
            all-MiniLM-L6-v2 asset of :mod:`companion.hub` (fetched if needed).
        dtype, device: of the parameters.
        **config_overrides: :class:`BertConfig` fields to change (e.g. ``fused_attention=False``).

    Raises:
        ValueError: a tensor the model has no place for, a missing one, or a shape mismatch (named).
    """
    from safetensors.torch import load_file

    from companion.tokenizers.wordpiece import WordPieceTokenizer

    if path is None:
        from companion import hub

        path = hub.fetch("minilm")
    folder = Path(path)
    config_dict = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    tensors = load_file(str(folder / "model.safetensors"))
    has_pooler = any(k.removeprefix("bert.").startswith("pooler.") for k in tensors)
    config = BertConfig.from_hf_dict(config_dict, add_pooler=has_pooler, **config_overrides)
    model = BertModel(config, device="meta", dtype=dtype)
    expected = {k: tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}
    state = {}
    for name, w in tensors.items():
        ours = _companion_name(name)
        if ours is None:
            if name.removeprefix("bert.") == "embeddings.position_ids":
                continue
            raise ValueError(
                f"path: {folder.name}/model.safetensors holds {name!r}, which BERT has no place for"
            )
        if tuple(w.shape) != expected.get(ours):
            raise ValueError(
                f"path: tensor {name!r} has shape {tuple(w.shape)}, expected {expected.get(ours)}"
            )
        state[ours] = w.to(dtype=dtype, device=device)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"path: {folder.name}/model.safetensors lacks {missing[:5]}")
    model.load_state_dict(state, assign=True)
    tokenizer = WordPieceTokenizer.from_vocab_file(folder / "vocab.txt", expected_size=config.vocab_size)
    return model.eval(), tokenizer


def batch_encode(
    tokenizer: Any, texts: Sequence[str], *, max_length: int = 128, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode texts as BERT reads them: ``[CLS] … [SEP]``, cut to ``max_length`` (keeping the final
    ``[SEP]``), right-padded with ``[PAD]``.

    Returns:
        ``(input_ids (B, T), attention_mask (B, T))`` int64, ``T`` the longest encoded text.
    """
    check_positive_int("max_length", max_length)
    if max_length < 2:
        raise ValueError(f"max_length: [CLS] and [SEP] need at least 2 positions, got {max_length}")
    if isinstance(texts, str):
        raise TypeError("texts: expected a sequence of strings, got one str (wrap it in a list)")
    rows = []
    sep = tokenizer.vocab["[SEP]"]
    for text in texts:
        ids = tokenizer.encode(text)
        rows.append(ids if len(ids) <= max_length else [*ids[: max_length - 1], sep])
    t = max(len(r) for r in rows)
    pad = tokenizer.vocab["[PAD]"]
    ids = torch.tensor([r + [pad] * (t - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (t - len(r)) for r in rows], device=device)
    return ids, mask


def segment_ids(len_a: int, len_b: int = 0) -> torch.Tensor:
    """The segment (token-type) ids of ``[CLS] A [SEP] B [SEP]``: 0 for ``[CLS]``, A and the first
    ``[SEP]``; 1 for B and its ``[SEP]``. ``len_b = 0`` is a single sentence ``[CLS] A [SEP]``.

    Returns:
        int64 ``(len_a + 2,)`` or ``(len_a + len_b + 3,)``.
    """
    for name, n in (("len_a", len_a), ("len_b", len_b)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{name}: expected an int >= 0, got {n!r}")
    ones = len_b + 1 if len_b else 0
    return torch.tensor([0] * (len_a + 2) + [1] * ones)


def encode_pair(tokenizer: Any, text_a: str, text_b: str) -> tuple[list[int], list[int]]:
    """``[CLS] A [SEP] B [SEP]`` as BERT reads a sentence pair: ``(ids, segment ids)``, lists of ints."""
    cls_, sep = tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]
    a = tokenizer.encode(text_a, add_special_tokens=False)
    b = tokenizer.encode(text_b, add_special_tokens=False)
    return [cls_, *a, sep, *b, sep], segment_ids(len(a), len(b)).tolist()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the token states over the real tokens: ``(B, T, d), (B, T) -> (B, d)``."""
    m = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


@torch.inference_mode()
def sentence_embeddings(
    model: BertModel, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 32, max_length: int = 256
) -> torch.Tensor:
    """Sentence vectors as sentence-transformers computes them for all-MiniLM-L6-v2: mean-pooled token
    states, L2-normalized. Returns ``(len(texts), d)`` float32 on the model's device."""
    check_positive_int("batch_size", batch_size)
    device = model.embeddings.word_embeddings.weight.device
    out = []
    for i in range(0, len(texts), batch_size):
        ids, mask = batch_encode(tokenizer, texts[i : i + batch_size], max_length=max_length, device=device)
        hidden, _ = model(ids, mask)
        out.append(F.normalize(mean_pool(hidden, mask).float(), dim=-1))
    return torch.cat(out)


# ------------------------------------------------------------------------------------------------
# pretraining: masked language modelling and next-sentence prediction
# ------------------------------------------------------------------------------------------------
class BertForPreTraining(nn.Module):
    """BERT with its two pretraining heads (Devlin et al., 2019, §3.1).

    * MLM: ``logits = LN(GELU(h W_t + b_t)) Eᵀ + b``, with ``E`` the word-embedding matrix (tied);
    * NSP: ``logits = pooled W_s + b_s``, two classes (0: B follows A, 1: B is a random sentence).

    Args:
        config: a :class:`BertConfig` with ``add_pooler=True``.
        device, dtype: of the parameters.
    """

    def __init__(
        self,
        config: BertConfig,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config: expected a BertConfig, got {type(config).__name__}")
        if not config.add_pooler:
            raise ValueError("config: next-sentence prediction reads the pooler; set add_pooler=True")
        kw = {"device": device, "dtype": dtype}
        d = config.hidden_size
        self.bert = BertModel(config, **kw)
        self.transform = nn.Linear(d, d, **kw)
        self.transform_norm = make_norm("layernorm", d, config.layer_norm_eps, fused=True, **kw)
        self.mlm_bias = nn.Parameter(torch.zeros(config.vocab_size, **kw))
        self.nsp = nn.Linear(d, 2, **kw)
        self._gelu = "tanh" if config.hidden_act == "gelu_tanh" else "none"
        if str(device) != "meta":
            heads = nn.ModuleList([self.transform, self.transform_norm, self.nsp])
            _init_bert_(heads, config.initializer_range)

    @classmethod
    def from_hf(cls, hf_model: Any, **overrides: Any) -> BertForPreTraining:
        """An equal model from a Hugging Face ``BertForPreTraining`` (weights copied)."""
        config = BertConfig.from_hf_dict(hf_model.config.to_dict(), add_pooler=True, **overrides)
        model = cls(config)
        heads = {
            "cls.predictions.transform.dense.weight": "transform.weight",
            "cls.predictions.transform.dense.bias": "transform.bias",
            "cls.predictions.transform.LayerNorm.weight": "transform_norm.weight",
            "cls.predictions.transform.LayerNorm.bias": "transform_norm.bias",
            "cls.predictions.bias": "mlm_bias",
            "cls.seq_relationship.weight": "nsp.weight",
            "cls.seq_relationship.bias": "nsp.bias",
        }
        state = {}
        for name, w in hf_model.state_dict().items():
            if name in heads:
                state[heads[name]] = w
            elif name.startswith("bert.") and _companion_name(name) is not None:
                state["bert." + _companion_name(name)] = w
        model.load_state_dict(state)  # strict: every weight of ours must come from the HF model
        return model.to(hf_model.device).eval()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        mlm_labels: torch.Tensor | None = None,
        nsp_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Returns ``(mlm_logits (B, T, V), nsp_logits (B, 2), loss)``.

        The loss is the mean cross-entropy over the masked positions (``mlm_labels != -100``) plus the
        NSP cross-entropy, for whichever labels are given (None without labels).
        """
        hidden, pooled = self.bert(input_ids, attention_mask, token_type_ids)
        h = self.transform_norm(F.gelu(self.transform(hidden), approximate=self._gelu))
        mlm_logits = F.linear(h, self.bert.embeddings.word_embeddings.weight, self.mlm_bias)
        nsp_logits = self.nsp(pooled)
        loss = None
        if mlm_labels is not None:
            loss = lm_loss(mlm_logits, mlm_labels)
        if nsp_labels is not None:
            nsp = F.cross_entropy(nsp_logits, nsp_labels)
            loss = nsp if loss is None else loss + nsp
        return mlm_logits, nsp_logits, loss


def mlm_mask(
    input_ids: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Sequence[int] = (),
    attention_mask: torch.Tensor | None = None,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: choose each maskable token with ``probability``; of the chosen, 80% become
    ``[MASK]``, 10% a random token, 10% stay as they are. Special tokens and padding are never chosen.

    Why not always ``[MASK]``: the token never appears at fine-tuning time, so a model trained only on
    it would learn nothing useful about the representation of *real* tokens at the predicted positions.

    Args:
        input_ids: ``(B, T)`` ids.
        mask_id: the id of ``[MASK]``.
        vocab_size: random replacements are drawn from ``[0, vocab_size)``.
        special_ids: ids never masked (``[CLS]``, ``[SEP]``, ``[PAD]``).
        attention_mask: ``(B, T)``; positions where it is 0 are never masked.
        probability: the selection rate (BERT: 0.15).
        generator: for reproducible masks.

    Returns:
        ``(inputs, labels)``: the corrupted ids, and the original ids at the chosen positions with
        ``-100`` elsewhere (the loss ignores them).
    """
    check_tensor("input_ids", input_ids, ndim=2)
    if not 0 < probability < 1:
        raise ValueError(f"probability: expected a number in (0, 1), got {probability!r}")
    check_positive_int("vocab_size", vocab_size)
    device = input_ids.device
    maskable = ~torch.isin(input_ids, torch.tensor(list(special_ids), dtype=input_ids.dtype, device=device))
    if attention_mask is not None:
        maskable &= attention_mask.bool()
    u = torch.rand(input_ids.shape, generator=generator, device=device)
    chosen = maskable & (u < probability)
    # One more uniform per position splits the chosen ones 80 / 10 / 10.
    v = torch.rand(input_ids.shape, generator=generator, device=device)
    random_ids = torch.randint(
        0, vocab_size, input_ids.shape, generator=generator, device=device, dtype=input_ids.dtype
    )
    inputs = torch.where(chosen & (v < 0.8), torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(chosen & (v >= 0.8) & (v < 0.9), random_ids, inputs)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    return inputs, labels


def nsp_pairs(
    documents: Sequence[Sequence[str]], n_pairs: int, *, generator: torch.Generator | None = None
) -> list[tuple[str, str, int]]:
    """Next-sentence-prediction examples: ``(A, B, label)`` with label 0 when ``B`` is the sentence
    that follows ``A`` in its document and 1 when ``B`` is a random sentence from another document,
    each with probability ½ (a coin flip per pair, as in BERT's data code).

    Args:
        documents: each a list of consecutive sentences; at least two documents, each with at least
            two sentences.
        n_pairs: how many pairs to make.
        generator: for reproducible pairs.
    """
    check_positive_int("n_pairs", n_pairs)
    docs = [list(d) for d in documents]
    if len(docs) < 2 or any(len(d) < 2 for d in docs):
        raise ValueError("documents: expected at least 2 documents of at least 2 sentences each")
    g = generator

    def pick(n: int) -> int:
        return int(torch.randint(0, n, (1,), generator=g))

    pairs = []
    for _ in range(n_pairs):
        d = pick(len(docs))
        s = pick(len(docs[d]) - 1)
        if pick(2) == 0:
            pairs.append((docs[d][s], docs[d][s + 1], 0))
        else:
            other = (d + 1 + pick(len(docs) - 1)) % len(docs)  # any document but d
            pairs.append((docs[d][s], docs[other][pick(len(docs[other]))], 1))
    return pairs
