"""The published configurations of :mod:`companion.models.configs`: ``REGISTRY``, every field of every
entry cited (a paper's architecture section, or the official ``config.json`` / modeling code).

Import it from :mod:`companion.models.configs` (``configs.REGISTRY["llama-2-7b"]``); this module holds
the data, that one the schema and the counting rules.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator, Mapping

from companion.models.configs import (
    Activation,
    ArchConfig,
    Attention,
    AttentionPattern,
    Bias,
    Layout,
    Norm,
    NormPosition,
    Position,
    RopeScaling,
    cite,
)

__all__ = ["REGISTRY"]


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------


class _Registry(Mapping[str, ArchConfig]):
    """A read-only ``name -> ArchConfig`` mapping whose KeyError suggests close names."""

    def __init__(self, entries: Iterable[ArchConfig]) -> None:
        self._entries = {e.name: e for e in entries}

    def __getitem__(self, name: str) -> ArchConfig:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(name), list(self._entries), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self._entries)}"
            raise KeyError(f"name: no registry entry {name!r}{hint}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"REGISTRY({', '.join(self._entries)})"


L, R, P = Layout, Position, NormPosition
LN, RMS = Norm.LAYERNORM, Norm.RMSNORM
A, MHA, MQA, GQA = Activation, Attention.MHA, Attention.MQA, Attention.GQA

_VASWANI = 'Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (§3, Table 3 "base")'
_BERT = (
    'Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding", 2019'
)
_GPT2 = 'Radford et al., "Language Models are Unsupervised Multitask Learners", OpenAI 2019'
_GPT3 = 'Brown et al., "Language Models are Few-Shot Learners", NeurIPS 2020 (§2.1, Table 2.1)'
_T5 = (
    'Raffel et al., "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer", '
    "JMLR 2020"
)
_LLAMA = 'Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023 (§2.2, Table 2)'
_LLAMA2 = 'Touvron et al., "Llama 2: Open Foundation and Fine-Tuned Chat Models", 2023 (§2.2, Table 1)'
_LLAMA3 = 'Llama Team, AI @ Meta, "The Llama 3 Herd of Models", 2024 (Table 3)'
_PALM = 'Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways", 2022 (§2, Table 1)'
_BLOOM = 'BigScience Workshop, "BLOOM: A 176B-Parameter Open-Access Multilingual Language Model", 2022'
_GLM = 'Zeng et al., "GLM-130B: An Open Bilingual Pre-trained Model", ICLR 2023'
_GLM_CODE = "THUDM/GLM-130B configs/model_glm_130b.sh; THUDM/SwissArmyTransformer glm130B_model.py"
_CHATGLM = "THUDM/chatglm-6b config.json / modeling_chatglm.py, 2023"
_CHATGLM2 = "THUDM/chatglm2-6b config.json / modeling_chatglm.py, 2023"
_BAICHUAN2 = 'Yang et al., "Baichuan 2: Open Large-scale Language Models", 2023'
_GPTOSS = 'OpenAI, "gpt-oss-120b & gpt-oss-20b Model Card", 2025'
_GPTOSS_CFG = "openai/gpt-oss-20b config.json; openai/gpt-oss gpt_oss/torch/model.py"
_SMOLLM2 = (
    'Allal et al., "SmolLM2: When Smol Goes Big — Data-Centric Training of a Small Language Model", 2025'
)
_SMOLLM2_CFG = "HuggingFaceTB/SmolLM2-135M-Instruct config.json (= the local GGUF's llama.* metadata)"
_ARCH = "year layout pos norm norm_position act attn"  # what a paper's architecture section states

# fmt: off
REGISTRY: Mapping[str, ArchConfig] = _Registry([
    ArchConfig(
        "transformer-base", 2017, L.ENCODER_DECODER, R.SINUSOIDAL, LN, P.POST, A.RELU, MHA,
        n_layers=6, d_model=512, n_heads=8, n_kv_heads=8, head_dim=64, d_ff=2048, vocab_size=37_000,
        context=None, tied_embeddings=True, bias=Bias.ALL, norm_eps=None, final_norm=False,
        notes="V = the paper's 'about 37000' shared EN–DE BPE tokens, so the count (63.1M) is near, not at, "
              "Table 3's 65M. No maximum length: the sinusoids are fixed. 6 encoder + 6 decoder layers.",
        sources=cite({_VASWANI: "*"})),
    ArchConfig(
        "bert-base", 2018, L.ENCODER, R.LEARNED, LN, P.POST, A.GELU, MHA,
        n_layers=12, d_model=768, n_heads=12, n_kv_heads=12, head_dim=64, d_ff=3072, vocab_size=30_522,
        context=512, tied_embeddings=True, bias=Bias.ALL, norm_eps=1e-12, final_norm=False,
        embedding_norm=True, n_token_types=2,
        notes="Counted as BertModel without pooler (+590 592 gives transformers' 109 482 240) or MLM head.",
        sources=cite({_BERT: _ARCH, "google-bert/bert-base-uncased config.json": "*"})),
    ArchConfig(
        "roberta-base", 2019, L.ENCODER, R.LEARNED, LN, P.POST, A.GELU, MHA,
        n_layers=12, d_model=768, n_heads=12, n_kv_heads=12, head_dim=64, d_ff=3072, vocab_size=50_265,
        context=514, tied_embeddings=True, bias=Bias.ALL, norm_eps=1e-5, final_norm=False,
        embedding_norm=True, n_token_types=1,
        notes="BERT retrained: no NSP, dynamic masking, byte-level BPE (50K), more data, larger batches; "
              "514 position rows (positions start after the padding index 1).",
        sources=cite({'Liu et al., "RoBERTa: A Robustly Optimized BERT Pretraining Approach", 2019': _ARCH,
                      "FacebookAI/roberta-base config.json": "*"})),
    ArchConfig(
        "albert-base-v2", 2020, L.ENCODER, R.LEARNED, LN, P.POST, A.GELU_TANH, MHA,
        n_layers=12, d_model=768, n_heads=12, n_kv_heads=12, head_dim=64, d_ff=3072, vocab_size=30_000,
        context=512, tied_embeddings=True, bias=Bias.ALL, norm_eps=1e-12, final_norm=False,
        embedding_norm=True, n_token_types=2, embedding_dim=128, shared_layers=True,
        notes="Factorized embeddings (V·E + E·d, E = 128) and one set of weights shared by the 12 layers: "
              "11.1M parameters for BERT-base's shape (108.9M); sentence-order prediction replaces NSP.",
        sources=cite({'Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language '
                      'Representations", 2020': _ARCH + " embedding_dim shared_layers",
                      "albert/albert-base-v2 config.json": "*"})),
    ArchConfig(
        "gpt-2", 2019, L.DECODER, R.LEARNED, LN, P.PRE, A.GELU_TANH, MHA,
        n_layers=12, d_model=768, n_heads=12, n_kv_heads=12, head_dim=64, d_ff=3072, vocab_size=50_257,
        context=1024, tied_embeddings=True, bias=Bias.ALL, norm_eps=1e-5,
        notes="GPT-2 small (124M); the tanh GELU is transformers' gelu_new.",
        sources=cite({_GPT2: _ARCH, "openai-community/gpt2 config.json": "*"})),
    ArchConfig(
        "gpt-3-175b", 2020, L.DECODER, R.LEARNED, LN, P.PRE, A.GELU_TANH, MHA,
        n_layers=96, d_model=12_288, n_heads=96, n_kv_heads=96, head_dim=128, d_ff=49_152, vocab_size=50_257,
        context=2048, tied_embeddings=True, bias=Bias.ALL, norm_eps=None,
        attn_pattern=AttentionPattern.ALTERNATING_BANDED,
        notes="'The same model and architecture as GPT-2': activation, biases, tying, vocabulary and norms "
              "are GPT-2's; the band width and the norm epsilon are not published. 174.6B by our count.",
        sources=cite({_GPT2: "act bias tied_embeddings vocab_size norm_eps final_norm norm_bias",
                      _GPT3: "*"})),
    ArchConfig(
        "t5-base", 2019, L.ENCODER_DECODER, R.RELATIVE_BIAS, RMS, P.PRE, A.RELU, MHA,
        n_layers=12, d_model=768, n_heads=12, n_kv_heads=12, head_dim=64, d_ff=3072, vocab_size=32_128,
        context=512, tied_embeddings=True, bias=Bias.NONE, norm_eps=1e-6, norm_bias=False,
        n_position_buckets=32,
        notes="T5's scale-only 'layer norm' is RMSNorm; one bias table per stack (first layer, shared). "
              "v1.1 (google/t5-v1_1-base) uses GeGLU, d_ff 2048 and untied embeddings.",
        sources=cite({_T5: _ARCH, "google-t5/t5-base config.json": "*"})),
    ArchConfig(
        "llama-7b", 2023, L.DECODER, R.ROPE, RMS, P.PRE, A.SWIGLU, MHA,
        n_layers=32, d_model=4096, n_heads=32, n_kv_heads=32, head_dim=128, d_ff=11_008, vocab_size=32_000,
        context=2048, tied_embeddings=False, bias=Bias.NONE, norm_eps=1e-6, rope_theta=10_000,
        notes="d_ff = 256·⌈(2/3·4d)/256⌉ = 11 008; SentencePiece BPE with 32k tokens.",
        sources=cite({_LLAMA: _ARCH + " n_layers d_model n_heads context",
                      "meta-llama/llama params.json (7B) and llama/model.py": "*"})),
    ArchConfig(
        "llama-2-7b", 2023, L.DECODER, R.ROPE, RMS, P.PRE, A.SWIGLU, MHA,
        n_layers=32, d_model=4096, n_heads=32, n_kv_heads=32, head_dim=128, d_ff=11_008, vocab_size=32_000,
        context=4096, tied_embeddings=False, bias=Bias.NONE, norm_eps=1e-5, rope_theta=10_000,
        sources=cite({_LLAMA2: _ARCH + " context", "meta-llama/Llama-2-7b-hf config.json": "*"})),
    ArchConfig(
        "llama-2-70b", 2023, L.DECODER, R.ROPE, RMS, P.PRE, A.SWIGLU, GQA,
        n_layers=80, d_model=8192, n_heads=64, n_kv_heads=8, head_dim=128, d_ff=28_672, vocab_size=32_000,
        context=4096, tied_embeddings=False, bias=Bias.NONE, norm_eps=1e-5, rope_theta=10_000,
        sources=cite({_LLAMA2: _ARCH + " context", "meta-llama/Llama-2-70b-hf config.json": "*"})),
    ArchConfig(
        "llama-3-8b", 2024, L.DECODER, R.ROPE, RMS, P.PRE, A.SWIGLU, GQA,
        n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8, head_dim=128, d_ff=14_336, vocab_size=128_256,
        context=8192, tied_embeddings=False, bias=Bias.NONE, norm_eps=1e-5, rope_theta=500_000,
        sources=cite({_LLAMA3: _ARCH, "meta-llama/Meta-Llama-3-8B config.json": "*"})),
    ArchConfig(
        "palm-540b", 2022, L.DECODER, R.ROPE, LN, P.PRE_PARALLEL, A.SWIGLU, MQA,
        n_layers=118, d_model=18_432, n_heads=48, n_kv_heads=1, head_dim=256, d_ff=73_728, vocab_size=256_000,
        context=2048, tied_embeddings=True, bias=Bias.NONE, norm_eps=None, norm_bias=False,
        notes="'No biases in any of the dense kernels or layer norms'; d_ff = 4d and d_h = 256 ≠ d/H. "
              "A final LayerNorm is assumed; RoPE's base and the norm epsilon are not stated. 540.356B by "
              "our count vs Table 1's 540.35B.",
        sources=cite({_PALM: "*"})),
    ArchConfig(
        "bloom-176b", 2022, L.DECODER, R.ALIBI, LN, P.PRE, A.GELU_TANH, MHA,
        n_layers=70, d_model=14336, n_heads=112, n_kv_heads=112, head_dim=128, d_ff=57344, vocab_size=250_880,
        context=2048, tied_embeddings=True, bias=Bias.ALL, norm_eps=1e-5, embedding_norm=True,
        tokenizer_vocab=250_680,
        notes="The 250 680-token vocabulary is padded to 250 880 embedding rows; the count matches the model "
              "card's 176 247 271 424 exactly.",
        sources=cite({_BLOOM: _ARCH + " tokenizer_vocab context", "bigscience/bloom config.json": "*"})),
    ArchConfig(
        "glm-130b", 2022, L.PREFIX_LM, R.ROPE, LN, P.POST, A.GEGLU, MHA,
        n_layers=70, d_model=12_288, n_heads=96, n_kv_heads=96, head_dim=128, d_ff=32_768, vocab_size=150_528,
        context=2048, tied_embeddings=True, bias=Bias.ALL, norm_eps=1e-5, rope_theta=10_000,
        residual_alpha=math.sqrt(2 * 70),
        notes="DeepNorm, x ← LN(α·x + f(x)) with α = √(2N) = √140; GeGLU has 3 matrices. Tied output "
              "and a final LN follow SwissArmyTransformer's base model (not stated in the paper). 128.7B.",
        sources=cite({_GLM: _ARCH + " residual_alpha context", _GLM_CODE: "*"})),
    ArchConfig(
        "chatglm-6b", 2023, L.PREFIX_LM, R.ROPE_2D, LN, P.POST, A.GELU_TANH, MHA,
        n_layers=28, d_model=4096, n_heads=32, n_kv_heads=32, head_dim=128, d_ff=16_384, vocab_size=130_528,
        context=2048, tied_embeddings=True, bias=Bias.ALL, norm_eps=1e-5, rope_theta=10_000,
        residual_alpha=math.sqrt(2 * 28),
        notes="LayerNorm, not DeepNorm or RMSNorm: each block adds α·LN(x) to f(LN(x)), α = √(2N) = "
              "√56. The MLP class named GLU is ungated, GELU(xW₁ + b₁)W₂ + b₂ (2 matrices). Tied: "
              "6.17B, the README's 6.2B (untied would be 6.71B; the checkpoint stores both matrices).",
        sources=cite({"THUDM/ChatGLM-6B README, 2023": "year tied_embeddings", _CHATGLM: "*"})),
    ArchConfig(
        "chatglm2-6b", 2023, L.DECODER, R.ROPE, RMS, P.PRE, A.SWIGLU, GQA,
        n_layers=28, d_model=4096, n_heads=32, n_kv_heads=2, head_dim=128, d_ff=13_696, vocab_size=65_024,
        context=32_768, tied_embeddings=False, bias=Bias.QKV, norm_eps=1e-5, rope_theta=10_000,
        notes="The README describes GLM's hybrid objective on 1.4T tokens; 'pretrained with [gMASK] "
              "only' is unverified. RMSNorm pre-norm; multi_query_group_num = 2; RoPE on half of "
              "each head; 32K context (chat tuning at 8K).",
        sources=cite({"THUDM/ChatGLM2-6B README, 2023": "year context", _CHATGLM2: "*"})),
    ArchConfig(
        "baichuan2-7b", 2023, L.DECODER, R.ROPE, RMS, P.PRE, A.SWIGLU, MHA,
        n_layers=32, d_model=4096, n_heads=32, n_kv_heads=32, head_dim=128, d_ff=11_008, vocab_size=125_696,
        context=4096, tied_embeddings=False, bias=Bias.NONE, norm_eps=1e-6, rope_theta=10_000,
        notes="NormHead (output rows L2-normalized, no extra parameters) and max-z loss; 2.6T tokens.",
        sources=cite({_BAICHUAN2: _ARCH + " vocab_size context",
                      "baichuan-inc/Baichuan2-7B-Base config.json / modeling_baichuan.py": "*"})),
    ArchConfig(
        "baichuan2-13b", 2023, L.DECODER, R.ALIBI, RMS, P.PRE, A.SWIGLU, MHA,
        n_layers=40, d_model=5120, n_heads=40, n_kv_heads=40, head_dim=128, d_ff=13_696, vocab_size=125_696,
        context=4096, tied_embeddings=False, bias=Bias.NONE, norm_eps=1e-6,
        notes="ALiBi where the 7B uses RoPE; otherwise the 7B's recipe (NormHead, max-z loss, 2.6T tokens).",
        sources=cite({_BAICHUAN2: _ARCH + " vocab_size context",
                      "baichuan-inc/Baichuan2-13B-Base config.json / modeling_baichuan.py": "*"})),
    ArchConfig(
        "gpt-oss-20b", 2025, L.DECODER, R.ROPE, RMS, P.PRE, A.SWIGLU_CLAMPED, GQA,
        n_layers=24, d_model=2880, n_heads=64, n_kv_heads=8, head_dim=64, d_ff=0, vocab_size=201_088,
        context=131_072, tied_embeddings=False, bias=Bias.ALL, norm_eps=1e-5, rope_theta=150_000,
        rope_scaling=RopeScaling.YARN, rope_factor=32.0, attention_sinks=True,
        attn_pattern=AttentionPattern.ALTERNATING_SLIDING, sliding_window=128,
        n_experts=32, top_k=4, expert_d_ff=2880, router_bias=True,
        notes="YaRN ×32 stretches the 4 096-token training length to 131 072. SwiGLU clamped at 7 with "
              "σ(1.702·x) and (up + 1); experts in MXFP4. Even layers slide, odd ones are full. Our count "
              "20.91B total / 3.61B active; the card: 20.9B / 3.6B.",
        sources=cite({_GPTOSS: "year layout norm_position", _GPTOSS_CFG: "*"})),
    ArchConfig(
        "smollm2-135m", 2024, L.DECODER, R.ROPE, RMS, P.PRE, A.SWIGLU, GQA,
        n_layers=30, d_model=576, n_heads=9, n_kv_heads=3, head_dim=64, d_ff=1536, vocab_size=49_152,
        context=8192, tied_embeddings=True, bias=Bias.NONE, norm_eps=1e-5, rope_theta=100_000,
        notes="The local checkpoint (SmolLM2-135M-Instruct, Q4_1 GGUF): its tensors sum to 134 515 008.",
        sources=cite({_SMOLLM2: "year", _SMOLLM2_CFG: "*"})),
])
# fmt: on
del L, R, P, LN, RMS, A, MHA, MQA, GQA
