"""Captions as vectors: a word-level tokenizer built from the training captions, and a small transformer text
encoder trained from scratch together with the video model (no pretrained weights: nothing here downloads).

Every caption starts with the <caption> token. The null condition of classifier-free guidance (Ho & Salimans 2022)
is the all-padding caption, `null_cond={"caption": PAD}`: its first slot is still attended to, so the null caption
has a learned vector of its own, distinct from any real caption (even the empty one).
"""
import re
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from .transformer import TransformerBlock

PAD, CAPTION, UNKNOWN = 0, 1, 2  # padding; the token every caption starts with; a word outside the vocabulary
SPECIAL_TOKENS = ("<pad>", "<caption>", "<unknown>")


def split_words(caption: str) -> List[str]:
    """Lower-case words and numbers: "A red circle, moving left." -> ["a", "red", "circle", "moving", "left"]."""
    return re.findall(r"[a-z0-9]+", caption.lower())


class CaptionTokenizer:
    """Words <-> ids over a fixed vocabulary; ids 0-2 are the special tokens."""

    def __init__(self, words: Sequence[str]):
        self.words = list(SPECIAL_TOKENS) + sorted(set(words) - set(SPECIAL_TOKENS))
        self.ids: Dict[str, int] = {word: index for index, word in enumerate(self.words)}

    @classmethod
    def from_captions(cls, captions: Sequence[str]) -> "CaptionTokenizer":
        return cls([word for caption in captions for word in split_words(caption)])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, captions: Sequence[str], length: int) -> torch.Tensor:
        """(B, length) ids: <caption>, the words, then padding. A caption too long for `length` is an error."""
        rows = []
        for caption in captions:
            ids = [CAPTION] + [self.ids.get(word, UNKNOWN) for word in split_words(caption)]
            if len(ids) > length:
                raise ValueError(f"caption {caption!r} has {len(ids) - 1} words; the model takes {length - 1}: "
                                 f"shorten it or raise caption_length")
            rows.append(ids + [PAD] * (length - len(ids)))
        return torch.tensor(rows, dtype=torch.long)

    def decode(self, ids: torch.Tensor) -> List[str]:
        return [" ".join(self.words[i] for i in row.tolist() if i not in (PAD, CAPTION)) for row in ids]


class TextEncoder(nn.Module):
    """ids (B, M) -> (tokens (B, M, D), mask (B, M) True for real tokens, pooled (B, D)): word embeddings and
    learned positions through pre-norm transformer blocks that ignore the padding; pooled is the mean of the real
    tokens."""

    def __init__(self, vocabulary_size: int, length: int, dim: int, depth: int, heads: int,
                 attention_backend: str = "sdpa"):
        super().__init__()
        self.length = length
        self.embedding = nn.Embedding(vocabulary_size, dim)
        self.position = nn.Parameter(torch.zeros(1, length, dim))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, 4.0, attention_backend) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if ids.dim() != 2 or ids.shape[1] != self.length or ids.dtype != torch.long:
            raise ValueError(f"the text encoder takes caption ids (B, {self.length}) of dtype long (from "
                             f"CaptionTokenizer.encode); got {ids.dtype} {tuple(ids.shape)}")
        mask = ids != PAD
        mask[:, 0] = True  # the <caption> slot: the null (all-padding) caption still has one token
        tokens = self.embedding(ids) + self.position  # (B, M, D)
        for block in self.blocks:
            tokens = block(tokens, key_padding_mask=mask)
        tokens = self.norm(tokens)
        pooled = (tokens * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True)  # (B, D)
        return tokens, mask, pooled
