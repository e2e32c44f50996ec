"""Chat templates (对话模板): turning a list of messages into the one string an instruct model was trained on.

An instruct model never sees "messages"; it sees text with markup around each turn. The markup is
the model's own, shipped with its weights as a Jinja template (``tokenizer.chat_template`` in a GGUF
file, ``chat_template`` in Hugging Face's ``tokenizer_config.json``). SmolLM2's, for example, renders::

    [{"role": "user", "content": "Hi"}]   →   <|im_start|>system
                                                You are a helpful AI assistant named SmolLM, …<|im_end|>
                                                <|im_start|>user
                                                Hi<|im_end|>
                                                <|im_start|>assistant          (add_generation_prompt)

— it inserts a default system prompt when the conversation has none, and ``add_generation_prompt``
opens the assistant's turn so that the model's next tokens are its reply.

The template is rendered as Hugging Face's ``apply_chat_template`` renders it: a sandboxed Jinja
environment with ``trim_blocks`` and ``lstrip_blocks``, ``raise_exception`` available to templates that
validate roles, and the messages as plain dicts. The result is tokenized with special tokens
recognized, so ``<|im_start|>`` is one token (tested against ``transformers``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

__all__ = ["ChatTemplateError", "render_chat_template"]

_ROLES_HINT = "a list of {'role': ..., 'content': ...} dicts"


class ChatTemplateError(ValueError):
    """A template called ``raise_exception`` (it rejected the conversation)."""


def _raise(message: str) -> None:
    raise ChatTemplateError(message)


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(template)


def _check_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages: expected {_ROLES_HINT}, got {type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise TypeError(
                f"messages[{i}]: expected a dict with 'role' and 'content', got {type(m).__name__}"
            )
        missing = [key for key in ("role", "content") if key not in m]
        if missing:
            raise ValueError(f"messages[{i}]: missing key(s) {missing}; expected {_ROLES_HINT}")
        if not isinstance(m["role"], str) or not isinstance(m["content"], str):
            raise TypeError(f"messages[{i}]: 'role' and 'content' must be str, got {dict(m)!r}")
        out.append(dict(m))
    return out


def render_chat_template(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = False,
    **variables: Any,
) -> str:
    """Render a conversation with a model's chat template.

    Args:
        template: the Jinja source (e.g. ``BPETokenizer.chat_template``).
        messages: ``[{"role": "system" | "user" | "assistant", "content": str}, …]``.
        add_generation_prompt: end with the opening of an assistant turn, so the model replies.
        **variables: extra template variables (``bos_token``, ``tools``, …).

    Returns:
        The text the model reads. Tokenize it with special tokens allowed.

    Raises:
        TypeError: if ``messages`` is not a list of dicts with str ``role`` and ``content``.
        ValueError: if a message lacks one of them.
        ChatTemplateError: if the template rejects the conversation (``raise_exception``).
    """
    if not isinstance(template, str) or not template:
        raise ValueError(f"template: expected a non-empty Jinja template string, got {template!r}")
    msgs = _check_messages(messages)
    return _compile(template).render(messages=msgs, add_generation_prompt=add_generation_prompt, **variables)
