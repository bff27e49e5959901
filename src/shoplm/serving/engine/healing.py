"""Token healing: complete a prompt that ends inside a token.

A BPE model never sees a word cut where a typed prefix cuts it: "Gaming Mous" ends in the tokens
" M" and "ous", while in training " Mouse" was always one token, so the model's next guesses are
poor (often the end of the text). Healing takes the prompt's last tokens back and lets the first
generated token be only a token that starts with the same bytes (" Mouse", " Mouses", ...); the
completion then starts after the text the prompt already had.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class HealedPrompt:
    """A prompt with its last tokens taken back."""

    prompt_ids: list[int]
    allowed_first: tuple[int, ...]  # the tokens the first generated one must be among
    prefix: str  # the text of the tokens taken back, which the first generated token repeats


class TokenHealer:
    """Finds, for a tokenizer, the tokens that start with given text (a sorted index of their strings)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self._special = set(tokenizer.all_special_ids)  # the property rebuilds its list on every call
        # Token strings in the tokenizer's own alphabet: for byte-level BPE one character per
        # byte, so a string prefix is a byte prefix.
        pairs = sorted(
            (token, index) for token, index in tokenizer.get_vocab().items() if index not in self._special
        )
        self._strings = [token for token, _ in pairs]
        self._ids = [index for _, index in pairs]

    def extensions(self, prefix: str) -> tuple[int, ...]:
        """Every token whose string starts with ``prefix`` (a string in the tokenizer's alphabet)."""
        start = bisect.bisect_left(self._strings, prefix)
        end = start
        while end < len(self._strings) and self._strings[end].startswith(prefix):
            end += 1
        return tuple(sorted(self._ids[start:end]))

    def heal(self, prompt_ids: list[int], max_tokens: int = 8) -> HealedPrompt | None:
        """The healed prompt, or None where healing changes nothing or cannot apply.

        It takes back the longest run of last tokens (at most ``max_tokens``) whose strings joined
        start some token: "Gaming Mous" ends in " M" + "ous" (no token is " Mous"), and both go
        back so that " Mouse" can come. It never takes back a special token or the whole prompt
        (something must be left to prefill), nor a run that starts inside a character.
        """
        best: HealedPrompt | None = None
        joined = ""
        for count in range(1, min(max_tokens, len(prompt_ids) - 1) + 1):
            token = prompt_ids[-count]
            if token in self._special:
                break
            joined = str(self.tokenizer.convert_ids_to_tokens(token)) + joined
            allowed = self.extensions(joined)
            if not allowed:
                break
            prefix = str(self.tokenizer.decode(prompt_ids[-count:]))
            if prefix and "\ufffd" not in prefix and allowed != (token,):
                best = HealedPrompt(prompt_ids[:-count], allowed, prefix)
        return best
