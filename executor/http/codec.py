"""Text <-> token ids for the HTTP front end.

A local checkpoint's own tokenizer is used when it has one (`transformers.AutoTokenizer`, local
files only). Catalog models are built with random weights and have no tokenizer, so they get
`ByteCodec`: a character below 256 is the token of that id, any other character its UTF-8
bytes, and a generated id below 256 prints as that Latin-1 character, any other as `<id>`.
Clients that need exact lengths send token-id prompts (`prompt: [int, ...]`, as `fastserve
bench` does) and read the generated ids from each choice's `token_ids`, whatever the codec.
"""

from __future__ import annotations

from collections.abc import Sequence


class ByteCodec:
    name = "bytes"

    def __init__(self, vocab_size: int) -> None:
        if vocab_size < 256:
            raise ValueError(f"the byte codec needs a vocabulary of at least 256 ids, the model has {vocab_size}")
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for char in text:
            code = ord(char)
            ids.extend((code,) if code < 256 else char.encode("utf-8"))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) if i < 256 else f"<{i}>" for i in ids)

    def chat(self, messages: Sequence[tuple[str, str]]) -> list[int]:
        return self.encode("".join(f"{role}: {content}\n" for role, content in messages) + "assistant: ")


class TokenizerCodec:
    """A checkpoint's tokenizer; chat prompts use its chat template when it has one."""

    name = "tokenizer"

    def __init__(self, tokenizer, vocab_size: int) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def chat(self, messages: Sequence[tuple[str, str]]) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            conversation = [{"role": role, "content": content} for role, content in messages]
            return list(self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True))
        return self.encode("".join(f"{role}: {content}\n" for role, content in messages) + "assistant: ")


def make_codec(checkpoint: str | None, vocab_size: int):
    """The checkpoint's tokenizer if it ships one, else the byte codec."""
    if checkpoint is not None:
        from transformers import AutoTokenizer

        try:
            return TokenizerCodec(AutoTokenizer.from_pretrained(checkpoint, local_files_only=True), vocab_size)
        except (OSError, ValueError):
            pass  # a checkpoint without tokenizer files: token-id prompts still work
    return ByteCodec(vocab_size)
