"""An architecture registry: published language-model configurations, every field cited.

Each :class:`ArchConfig` records what the Modern-LLMs chapter's component table shows — positions, the
norm and where it sits, the FFN activation, the attention — and the sizes that fix the parameter count.
``cfg.sources[field]`` cites, for every field, the paper (title, year) or the official config file it
comes from; categorical fields hold enum members (:class:`Position`, :class:`Norm`, …), never free text.
``REGISTRY["llama-2-7b"]`` looks an entry up (an unknown name suggests the closest ones).

Counting rules (:func:`param_count`, :func:`param_breakdown`), with d = d_model, H = n_heads,
G = n_kv_heads, d_h = head_dim, V = vocab_size (the rows of the embedding matrix)::

    attention  d·H·d_h + 2·d·G·d_h + H·d_h·d        + (H + 2G)·d_h biases (Bias.QKV), + d more (Bias.ALL)
                                                    + H sink logits (attention_sinks)
    FFN        (3 if gated else 2)·d·d_ff           + 2·d_ff + d (gated) or d_ff + d biases (Bias.ALL)
    MoE        n_experts FFNs of width expert_d_ff  + a router d·E (+ E with router_bias)
    norms      d each (RMSNorm, bias-free LayerNorm) or 2d (LayerNorm): 2 per layer, 1 per parallel
               block, 3 per decoder layer of an encoder–decoder; + final norm and embedding norm per stack
    tables     V·d token embedding (+ V·d for an untied output layer), + context·d learned positions per
               stack, + n_token_types·d (BERT), + n_position_buckets·H relative bias per stack (T5)

An encoder (BERT) is counted without a head or pooler; an encoder–decoder has ``n_layers`` layers in each
stack and one shared token embedding.

Active parameters (:func:`param_count_moe`) are those one token's forward pass multiplies by: attention,
norms, router, the ``top_k`` chosen experts and the output layer — the total minus ``(E − k)`` idle
experts per layer and minus the lookup tables (the input token embedding, learned positions, token
types). A tied embedding *is* the output layer, so it stays active.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING

from companion._validate import check_nonnegative_int, check_positive_int

if TYPE_CHECKING:  # at run time ``REGISTRY`` comes from the module ``__getattr__`` at the end
    from companion.models.published import REGISTRY
from companion.nn.ffn import ffn_param_count

try:
    from enum import StrEnum
except ImportError:  # Python 3.10

    class StrEnum(str, Enum):  # type: ignore[no-redef]
        """``enum.StrEnum`` for Python 3.10: members are strings and print as their value."""

        def __str__(self) -> str:
            return str(self.value)


__all__ = [
    "CATEGORICAL_FIELDS",
    "CITED_FIELDS",
    "REGISTRY",
    "Activation",
    "ArchConfig",
    "Attention",
    "AttentionPattern",
    "Bias",
    "Layout",
    "Norm",
    "NormPosition",
    "Position",
    "RopeScaling",
    "cite",
    "component_table",
    "ffn_matrices",
    "missing_sources",
    "param_breakdown",
    "param_count",
    "param_count_moe",
]


class Layout(StrEnum):
    """The stack: causal decoder, GLM's prefix-LM (bidirectional over the context), encoder, or both."""

    DECODER = "decoder"
    PREFIX_LM = "prefix_lm"
    ENCODER = "encoder"
    ENCODER_DECODER = "encoder_decoder"


class Position(StrEnum):
    """How positions enter: added tables (sinusoidal, learned), score biases (T5, ALiBi) or rotations."""

    NONE = "none"
    SINUSOIDAL = "sinusoidal"
    LEARNED = "learned"
    RELATIVE_BIAS = "relative_bias"
    ROPE = "rope"
    ROPE_2D = "rope_2d"
    ALIBI = "alibi"


class Norm(StrEnum):
    """LayerNorm (centre and scale, optional bias) or RMSNorm (scale only; T5's "layer norm")."""

    LAYERNORM = "layernorm"
    RMSNORM = "rmsnorm"


class NormPosition(StrEnum):
    """Norm before each sublayer (pre), after each residual sum (post), or one norm feeding attention
    and FFN side by side (pre_parallel: GPT-J, PaLM)."""

    PRE = "pre"
    POST = "post"
    PRE_PARALLEL = "pre_parallel"


class Activation(StrEnum):
    """The FFN: two-matrix MLPs (relu, gelu, gelu_tanh) or three-matrix gated ones (the GLU family)."""

    RELU = "relu"
    GELU = "gelu"
    GELU_TANH = "gelu_tanh"
    GEGLU = "geglu"
    SWIGLU = "swiglu"
    SWIGLU_CLAMPED = "swiglu_clamped"


class Attention(StrEnum):
    """Multi-head (G = H), multi-query (G = 1) or grouped-query (1 < G < H) attention."""

    MHA = "mha"
    MQA = "mqa"
    GQA = "gqa"


class AttentionPattern(StrEnum):
    """Which keys each layer sees: all (causal) keys, or layers alternating with a local window."""

    DENSE = "dense"
    ALTERNATING_BANDED = "alternating_banded"
    ALTERNATING_SLIDING = "alternating_sliding"


class Bias(StrEnum):
    """Biases of the linear layers: none (LLaMA, PaLM), Q/K/V only (ChatGLM2) or all (GPT-2, BLOOM)."""

    NONE = "none"
    QKV = "qkv"
    ALL = "all"


class RopeScaling(StrEnum):
    """How RoPE is stretched past its training length."""

    NONE = "none"
    LINEAR = "linear"
    NTK = "ntk"
    YARN = "yarn"


_GATED = frozenset({Activation.GEGLU, Activation.SWIGLU, Activation.SWIGLU_CLAMPED})
# the fields that take enum members, and their enums
CATEGORICAL_FIELDS: Mapping[str, type[Enum]] = MappingProxyType({
    "layout": Layout, "pos": Position, "norm": Norm, "norm_position": NormPosition, "act": Activation,
    "attn": Attention, "attn_pattern": AttentionPattern, "bias": Bias, "rope_scaling": RopeScaling,
})  # fmt: skip
_BOOLS = (
    "tied_embeddings", "norm_bias", "final_norm", "embedding_norm", "attention_sinks", "router_bias",
    "shared_layers",
)  # fmt: skip


@dataclass(frozen=True)
class ArchConfig:
    """One architecture. Sizes follow the official config; see the module docstring for the counting.

    Attributes:
        name: the registry key.
        year: of publication.
        layout: a :class:`Layout` (and ``pos``, ``norm``, ``norm_position``, ``act``, ``attn``,
            ``attn_pattern``, ``bias``, ``rope_scaling``: members of their enums).
        n_layers: ``L`` (per stack for an encoder–decoder).
        d_model: ``d``.
        n_heads: ``H`` query heads.
        n_kv_heads: ``G`` key/value heads.
        head_dim: ``d_h`` (``H·d_h`` may differ from ``d``: PaLM, GPT-OSS).
        d_ff: the dense FFN's inner width; 0 when every FFN is a mixture of experts.
        vocab_size: ``V``, rows of the embedding matrix (may be padded past the tokenizer's vocabulary).
        context: maximum (trained) positions; None when the architecture fixes none.
        tied_embeddings: the output layer reuses the token embedding.
        norm_bias: LayerNorms have a bias (PaLM: none); RMSNorm never has one.
        final_norm: a norm after the last layer of each stack (Pre-LN models).
        embedding_norm: a norm right after the embeddings (BLOOM, BERT).
        n_token_types: rows of BERT's segment table.
        n_position_buckets: T5's relative-bias buckets.
        residual_alpha: the residual-branch scale α of a DeepNorm-style block, ``x ← LN(α·x + f(x))``.
        norm_eps: the norm epsilon (None: not stated by the source; likewise ``rope_theta``, the RoPE
            base θ, and ``rope_factor``, its scaling factor).
        sliding_window: window of the local layers (``attn_pattern``).
        attention_sinks: a learned sink logit per head in every softmax (GPT-OSS).
        n_experts: experts of a mixture of experts (0: dense; with ``top_k``, ``expert_d_ff`` and
            ``router_bias``).
        tokenizer_vocab: the tokenizer's vocabulary when the embedding has padding rows (BLOOM).
        embedding_dim: ALBERT's factorized embedding width ``E`` (0: ``d_model``): the tables are
            ``V·E`` and a projection ``E·d (+ d)`` brings them to the model width.
        shared_layers: ALBERT's cross-layer sharing: the ``n_layers`` layers are one set of weights.
        notes: a short margin note (caveats, numbers we could not verify).
        sources: ``field -> citation`` for every field in ``CITED_FIELDS`` (see :func:`cite`).
    """

    name: str
    year: int
    layout: Layout
    pos: Position
    norm: Norm
    norm_position: NormPosition
    act: Activation
    attn: Attention
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    vocab_size: int
    context: int | None
    tied_embeddings: bool
    bias: Bias
    norm_eps: float | None
    rope_theta: float | None = None
    attn_pattern: AttentionPattern = AttentionPattern.DENSE
    norm_bias: bool = True
    final_norm: bool = True
    embedding_norm: bool = False
    n_token_types: int = 0
    n_position_buckets: int = 0
    residual_alpha: float | None = None
    rope_scaling: RopeScaling = RopeScaling.NONE
    rope_factor: float = 1.0
    sliding_window: int = 0
    attention_sinks: bool = False
    n_experts: int = 0
    top_k: int = 0
    expert_d_ff: int = 0
    router_bias: bool = False
    tokenizer_vocab: int | None = None
    embedding_dim: int = 0
    shared_layers: bool = False
    notes: str = field(default="", compare=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty str, got {self.name!r}")
        for name, enum in CATEGORICAL_FIELDS.items():
            value = getattr(self, name)
            if not isinstance(value, enum):
                known = isinstance(value, str) and value in {m.value for m in enum}
                hint = f"; {enum.__name__}({value!r}) converts it" if known else ""
                members = ", ".join(m.value for m in enum)
                raise TypeError(
                    f"{name}: expected a {enum.__name__} member ({members}), got {value!r}{hint}; "
                    "categorical fields take enum members, not free text"
                )
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}: expected a bool, got {getattr(self, name)!r}")
        for name in ("year", "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "vocab_size"):
            check_positive_int(name, getattr(self, name))
        for name in ("d_ff", "n_token_types", "n_position_buckets", "sliding_window", "n_experts", "top_k"):
            check_nonnegative_int(name, getattr(self, name))
        check_nonnegative_int("expert_d_ff", self.expert_d_ff)
        for name in ("context", "tokenizer_vocab"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        h, g = self.n_heads, self.n_kv_heads
        if h % g:
            raise ValueError(f"n_kv_heads: expected a divisor of n_heads={h}, got {g}")
        want = {Attention.MHA: g == h, Attention.MQA: g == 1, Attention.GQA: 1 < g < h}[self.attn]
        if not want:
            rule = {Attention.MHA: "G = H", Attention.MQA: "G = 1", Attention.GQA: "1 < G < H"}[self.attn]
            raise ValueError(f"attn: {self.attn.name} needs {rule}, got n_heads={h}, n_kv_heads={g}")
        if self.n_experts:
            if not 1 <= self.top_k <= self.n_experts:
                raise ValueError(
                    f"top_k: expected 1 <= top_k <= n_experts={self.n_experts}, got {self.top_k}"
                )
            check_positive_int("expert_d_ff", self.expert_d_ff)
            if self.d_ff:
                raise ValueError(f"d_ff: expected 0 (every FFN is a mixture of experts), got {self.d_ff}")
        else:
            check_positive_int("d_ff", self.d_ff)
            if self.top_k or self.expert_d_ff or self.router_bias:
                raise ValueError("top_k, expert_d_ff, router_bias: a dense model (n_experts=0) has none")
        if self.pos is Position.LEARNED and self.context is None:
            raise ValueError("context: learned positions need a table size, got None")
        if (self.pos is Position.RELATIVE_BIAS) != (self.n_position_buckets > 0):
            raise ValueError(
                f"n_position_buckets: expected > 0 iff pos=relative_bias, got {self.n_position_buckets}"
            )
        if (self.attn_pattern is AttentionPattern.ALTERNATING_SLIDING) != (self.sliding_window > 0):
            raise ValueError(
                f"sliding_window: expected > 0 exactly for alternating_sliding, got {self.sliding_window}"
            )
        for name in ("residual_alpha", "norm_eps", "rope_theta"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"{name}: expected None or a finite number > 0, got {value!r}")
        if not (isinstance(self.rope_factor, (int, float)) and 1 <= self.rope_factor < math.inf):
            raise ValueError(f"rope_factor: expected a finite number >= 1, got {self.rope_factor!r}")
        if self.tokenizer_vocab is not None and self.tokenizer_vocab > self.vocab_size:
            raise ValueError(
                f"tokenizer_vocab: expected <= vocab_size={self.vocab_size}, got {self.tokenizer_vocab}"
            )
        if not isinstance(self.sources, Mapping):
            raise TypeError(
                f"sources: expected a mapping field -> citation, got {type(self.sources).__name__}"
            )
        unknown = sorted(set(self.sources) - set(CITED_FIELDS))
        if unknown:
            raise ValueError(f"sources: cites unknown fields {unknown}; the cited fields are CITED_FIELDS")
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def gated(self) -> bool:
        """Whether the FFN is a GLU (three matrices), derived from ``act``."""
        return self.act in _GATED

    @property
    def is_moe(self) -> bool:
        """Whether the FFNs are mixtures of experts."""
        return self.n_experts > 0


CITED_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(ArchConfig) if f.name not in {"name", "notes", "sources"}
)


def cite(groups: Mapping[str, str]) -> dict[str, str]:
    """Turn ``{citation: "field field …"}`` into ``{field: citation}``; ``"*"`` names every field not
    named elsewhere, so ``cite({paper: "pos norm", config: "*"})`` cites all of ``CITED_FIELDS``.

    Raises:
        ValueError: a field that is unknown or cited twice, or a citation that is not a non-empty str.
    """
    out: dict[str, str] = {}
    rest: str | None = None
    for citation, names in groups.items():
        if not isinstance(citation, str) or not citation.strip():
            raise ValueError(f"groups: a citation must be a non-empty str, got {citation!r}")
        if names.strip() == "*":
            rest = citation
            continue
        for name in names.split():
            if name not in CITED_FIELDS:
                close = difflib.get_close_matches(name, CITED_FIELDS, n=1)
                raise ValueError(
                    f"groups: unknown field {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                )
            if name in out:
                raise ValueError(f"groups: field {name!r} is cited twice ({out[name]!r} and {citation!r})")
            out[name] = citation
    if rest is not None:
        out.update({name: rest for name in CITED_FIELDS if name not in out})
    return out


def missing_sources(cfg: ArchConfig) -> list[str]:
    """The fields of ``cfg`` that cite nothing (an empty list when every field has a citation)."""
    return [n for n in CITED_FIELDS if not (isinstance(cfg.sources.get(n), str) and cfg.sources[n].strip())]


def ffn_matrices(cfg: ArchConfig) -> int:
    """Weight matrices per FFN (per expert in an MoE): 3 for the gated GLU family, 2 otherwise (M17.2)."""
    return 3 if cfg.gated else 2


def _check_config(cfg: object) -> ArchConfig:
    if not isinstance(cfg, ArchConfig):
        raise TypeError(f"cfg: expected an ArchConfig (e.g. REGISTRY['gpt-2']), got {type(cfg).__name__}")
    return cfg


def param_breakdown(cfg: ArchConfig) -> dict[str, tuple[int, int]]:
    """``component -> (total, active)`` parameters; components: embedding, output, positions,
    attention, ffn, experts, router, norms. Summing gives :func:`param_count_moe`."""
    c = _check_config(cfg)
    d, h, g, dh, n_layers = c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.n_layers
    stacks = 2 if c.layout is Layout.ENCODER_DECODER else 1
    # layers with self-attention, and those with cross-attention too (the decoder of an encoder–decoder)
    layers, cross = stacks * n_layers, (n_layers if stacks == 2 else 0)
    attn = d * h * dh + 2 * d * g * dh + h * dh * d + (h if c.attention_sinks else 0)
    attn += {Bias.NONE: 0, Bias.QKV: (h + 2 * g) * dh, Bias.ALL: (h + 2 * g) * dh + d}[c.bias]
    norm = d * (2 if c.norm is Norm.LAYERNORM and c.norm_bias else 1)
    per_layer_norms = 1 if c.norm_position is NormPosition.PRE_PARALLEL else 2
    e = c.embedding_dim or d  # ALBERT factorizes the tables: V·E, then an E → d projection
    stored = 1 if c.shared_layers else layers  # ALBERT: one set of layer weights, used n_layers times
    embedding_norm = e * (2 if c.norm is Norm.LAYERNORM and c.norm_bias else 1)
    norms = (
        norm * (stored * per_layer_norms + cross + stacks * c.final_norm)
        + stacks * c.embedding_norm * embedding_norm
    )
    has_head = c.layout is not Layout.ENCODER
    embedding = c.vocab_size * e
    tables = stacks * (c.context * e if c.pos is Position.LEARNED else 0) + c.n_token_types * e
    projection = e * d + (d if c.bias is Bias.ALL else 0) if e != d else 0
    out = {
        "embedding": (
            embedding + projection,
            (embedding if (has_head and c.tied_embeddings) else 0) + projection,
        ),
        "output": (embedding if has_head and not c.tied_embeddings else 0,) * 2,
        "positions": (tables, 0),
        "attention": ((stored + cross) * attn + stacks * c.n_position_buckets * h,) * 2,
        "norms": (norms, norms),
    }
    bias = c.bias is Bias.ALL
    if c.is_moe:
        expert = ffn_param_count(d, c.expert_d_ff, gated=c.gated, bias=bias)
        out["experts"] = (layers * c.n_experts * expert, layers * c.top_k * expert)
        out["router"] = (layers * (d * c.n_experts + (c.n_experts if c.router_bias else 0)),) * 2
    else:
        out["ffn"] = (stored * ffn_param_count(d, c.d_ff, gated=c.gated, bias=bias),) * 2
    return out


def param_count(cfg: ArchConfig) -> int:
    """The dense parameter count by the module docstring's rules (tied weights counted once).

    SmolLM2-135M: 30 layers × 3 540 096 + 49 152·576 (tied) + 576 = 134 515 008; GPT-2 small: 124 439 808.

    Raises:
        ValueError: for a mixture of experts — total and active differ there; use :func:`param_count_moe`.
    """
    c = _check_config(cfg)
    if c.is_moe:
        raise ValueError(
            f"cfg: {c.name} is a mixture of experts ({c.n_experts} experts, top-{c.top_k}), where total and "
            "active parameters differ; use param_count_moe(cfg), which returns (total, active)"
        )
    return sum(total for total, _ in param_breakdown(c).values())


def param_count_moe(cfg: ArchConfig) -> tuple[int, int]:
    """``(total, active)`` parameters: total counts every expert; active counts the ``top_k`` experts a
    token is routed to and leaves out the lookup tables (input embedding unless tied, learned
    positions, token types). A dense config gives ``(param_count(cfg), total − lookups)``;
    GPT-OSS-20B gives (20 914 757 184, 3 608 307 264)."""
    parts = param_breakdown(cfg).values()
    return sum(t for t, _ in parts), sum(a for _, a in parts)


# --------------------------------------------------------------------------------------------------
# The component table
# --------------------------------------------------------------------------------------------------

_ACT = dict(
    zip(Activation, ("ReLU", "GELU", "GELU (tanh)", "GeGLU", "SwiGLU", "SwiGLU (clamped)"), strict=True)
)
_POS = {Position.LEARNED: "learned absolute ({c.context})", Position.ROPE: "RoPE", Position.ALIBI: "ALiBi",
        Position.ROPE_2D: "2D RoPE", Position.RELATIVE_BIAS: "bucketed relative bias"}  # fmt: skip


def _number(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def _row(c: ArchConfig) -> dict[str, str]:
    pos = _POS.get(c.pos, c.pos.value).format(c=c)
    if c.pos in (Position.ROPE, Position.ROPE_2D):
        if c.rope_theta is not None and c.rope_theta != 10_000:
            pos += f", θ = {_number(c.rope_theta)}"
        if c.rope_scaling is not RopeScaling.NONE:
            kind = "YaRN" if c.rope_scaling is RopeScaling.YARN else c.rope_scaling.value
            pos += f" + {kind} ×{c.rope_factor:g}"
    where = {
        NormPosition.PRE: "pre",
        NormPosition.POST: "post",
        NormPosition.PRE_PARALLEL: "pre, parallel block",
    }
    norm = f"{'LN' if c.norm is Norm.LAYERNORM else 'RMSNorm'} ({where[c.norm_position]}"
    norm += " + embedding LN)" if c.embedding_norm else ")"
    if c.residual_alpha is not None:
        rule = " = √(2N)" if math.isclose(c.residual_alpha, math.sqrt(2 * c.n_layers)) else ""
        norm += f", DeepNorm-style α{rule} = {c.residual_alpha:.3g}"
    act = _ACT[c.act] + (f", MoE {c.n_experts} experts, top-{c.top_k}" if c.is_moe else "")
    attn = {Attention.MHA: "MHA", Attention.MQA: "MQA", Attention.GQA: f"GQA {c.n_heads}/{c.n_kv_heads}"}[
        c.attn
    ]
    if c.attn_pattern is AttentionPattern.ALTERNATING_BANDED:
        attn += "; alternating dense and locally banded sparse"
    elif c.attn_pattern is AttentionPattern.ALTERNATING_SLIDING:
        attn += f"; sliding window {c.sliding_window} alternating with full"
    attn += "; sinks" if c.attention_sinks else ""
    attn += ", prefix-LM mask" if c.layout is Layout.PREFIX_LM else ""
    return {
        "Model": c.name,
        "Positions": pos,
        "Norm (placement)": norm,
        "FFN activation": act,
        "Attention": attn,
    }


def component_table(names: Iterable[str] | None = None) -> list[dict[str, str]]:
    """Rows ``{Model, Positions, Norm (placement), FFN activation, Attention}`` for the named entries
    (default: all, in registry order), ready for a Markdown or pandas table."""
    if isinstance(names, str):
        raise TypeError(f"names: expected an iterable of registry names, got the str {names!r}")
    from companion.models.published import REGISTRY

    return [_row(REGISTRY[n]) for n in (REGISTRY if names is None else names)]


def __getattr__(name: str) -> object:
    """``configs.REGISTRY``: the entries live in :mod:`companion.models.published` (the data, apart from
    the schema and the counting rules), which builds them from the classes above — so it is imported
    when first asked for, never in a cycle."""
    if name == "REGISTRY":
        from companion.models.published import REGISTRY

        return REGISTRY
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
