"""The one token estimate: characters, per-message framing and images, leaning high."""

from typing import Any

from kyma_mcp.usage import (
    CHARS_PER_TOKEN,
    TOKENS_PER_IMAGE,
    TOKENS_PER_MESSAGE,
    estimate_message_tokens,
    estimate_tokens,
)


def test_text_rounds_up_to_whole_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("a" * CHARS_PER_TOKEN) == 1
    assert estimate_tokens("a" * (CHARS_PER_TOKEN + 1)) == 2


def test_english_estimate_is_not_below_four_characters_a_token() -> None:
    sentence = "The quick brown fox jumps over the lazy dog near the riverbank at dawn."
    assert estimate_tokens(sentence) >= len(sentence) / 4


def test_messages_add_framing_and_images() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "abc"},
        {"role": "user", "content": [{"type": "text", "text": "abcdef"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None},
    ]
    expected = 3 * TOKENS_PER_MESSAGE + 1 + 2 + TOKENS_PER_IMAGE
    assert estimate_message_tokens(messages) == expected
