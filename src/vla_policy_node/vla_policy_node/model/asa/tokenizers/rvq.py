"""Learned action tokens: a VQ-VAE with a residual quantizer (RVQ); VQ is the depth-1 case.

Szot et al. (2024): an MLP encoder maps an action (or a whole chunk: `unit`) to a latent; M codebooks quantize it
coarse to fine (codebook m quantizes what codebooks < m left over); an MLP decoder maps the summed codes back.
Each unit becomes M tokens, token m from codebook m; ids are codebook-major (codebook m owns ids m*K..m*K+K-1),
so the token filter can demand "a code of codebook m" at position m. Trained with reconstruction MSE plus the
VQ-VAE codebook and commitment terms (straight-through gradients); codes unused over a window of steps are
re-initialized from current residuals (dead-code restart), and usage per codebook is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vla_policy_node.model.asa.grammar import PositionalGrammar
from vla_policy_node.model.asa.tokenizers.base import ActionTokenizer, config_asdict


@dataclass(frozen=True)
class RVQConfig:
    horizon: int
    action_dim: int
    unit: Literal["action", "chunk"] = "action"  # one token group per action, or per chunk
    codebook_size: int = 512
    depth: int = 2  # codebooks M (1 = plain VQ)
    latent_dim: int = 16
    hidden: int = 128
    commitment: float = 0.25
    fitted: bool = False

    def __post_init__(self) -> None:
        if self.unit not in ("action", "chunk"):
            raise ValueError(f"RVQ unit must be 'action' or 'chunk', got {self.unit!r}")
        if min(self.codebook_size, self.depth, self.latent_dim, self.hidden) < 1 or self.codebook_size < 2:
            raise ValueError(f"invalid RVQConfig: {self}")

    @property
    def unit_dim(self) -> int:
        return self.action_dim * (1 if self.unit == "action" else self.horizon)

    @property
    def units(self) -> int:
        return self.horizon if self.unit == "action" else 1


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, out))


class RVQTokenizer(ActionTokenizer):
    kind = "rvq"

    def __init__(self, config: RVQConfig) -> None:
        super().__init__(config.horizon, config.action_dim)
        self.config = config
        c = config
        self.encoder = _mlp(c.unit_dim, c.hidden, c.latent_dim)
        self.decoder = _mlp(c.latent_dim, c.hidden, c.unit_dim)
        self.codebooks = nn.Parameter(torch.randn(c.depth, c.codebook_size, c.latent_dim) * 0.1)
        self.requires_grad_(False)  # frozen unless fit() trains it

    @classmethod
    def from_config(cls, data: dict[str, Any], directory: Path | None = None) -> RVQTokenizer:
        return cls(RVQConfig(**data))

    def config_dict(self) -> dict[str, Any]:
        return config_asdict(self.config)

    @property
    def vocab_size(self) -> int:
        return self.config.depth * self.config.codebook_size

    @property
    def fitted(self) -> bool:
        return self.config.fitted

    # --- quantization ---------------------------------------------------------------------------------------
    def quantize(self, z: torch.Tensor, depth: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list]:
        """z [N, latent] -> (sum of chosen codes [N, latent], indices [N, M], residual per level)."""
        residual, total, indices, residuals = z, torch.zeros_like(z), [], []
        for m in range(depth or self.config.depth):
            book = self.codebooks[m]
            idx = torch.cdist(residual, book).argmin(-1)
            code = book[idx]
            residuals.append(residual)
            indices.append(idx)
            total = total + code
            residual = residual - code
        return total, torch.stack(indices, -1), residuals

    def _units(self, chunks: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(chunks, dtype=self.codebooks.dtype, device=self.codebooks.device)
        return x.reshape(-1, self.config.unit_dim)

    @torch.no_grad()
    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        self._require_fitted()
        chunks = self._check_shape(chunks)
        _, idx, _ = self.quantize(self.encoder(self._units(chunks)))
        ids = idx + torch.arange(self.config.depth, device=idx.device) * self.config.codebook_size
        return ids.reshape(len(chunks), -1).tolist()

    @torch.no_grad()
    def _decode_valid(self, tokens: Sequence[Sequence[int]], depth: int | None = None) -> np.ndarray:
        c = self.config
        ids = torch.as_tensor(np.asarray(tokens, np.int64), device=self.codebooks.device)
        ids = ids.reshape(len(tokens) * c.units, c.depth)
        use = depth or c.depth
        latent = sum(self.codebooks[m][ids[:, m] - m * c.codebook_size] for m in range(use))
        out = self.decoder(latent).reshape(len(tokens), self.horizon, self.action_dim)
        return out.double().cpu().numpy()

    def decode_depth(self, tokens: Sequence[Sequence[int]], depth: int) -> np.ndarray:
        """Decode with only the first `depth` codebooks (coarse-to-fine check)."""
        for seq in tokens:
            self.grammar().check(seq)
        return self._decode_valid(tokens, depth)

    def grammar(self) -> PositionalGrammar:
        c = self.config
        books = np.arange(self.vocab_size) // c.codebook_size
        return PositionalGrammar([books == (p % c.depth) for p in range(c.units * c.depth)])

    # --- training -------------------------------------------------------------------------------------------
    def fit(self, chunks: np.ndarray, *, steps: int = 3000, batch_size: int = 256, lr: float = 1e-3,
            dead_code_window: int = 100, seed: int = 0, **_: Any) -> dict[str, Any]:
        chunks = self._check_shape(chunks)
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        data = self._units(chunks)
        if len(data) < self.config.codebook_size:
            data = data.repeat(int(np.ceil(self.config.codebook_size / len(data))), 1)
        self.requires_grad_(True)
        self.train()
        with torch.no_grad():  # data-dependent init: codebook m = random residuals at level m
            z = self.encoder(data)
            for m in range(self.config.depth):
                pick = torch.randperm(len(z), generator=gen)[: self.config.codebook_size]
                self.codebooks[m] = z[pick]
                z = z - self.codebooks[m][torch.cdist(z, self.codebooks[m]).argmin(-1)]
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        usage = torch.zeros(self.config.depth, self.config.codebook_size)
        restarted = 0
        for step in range(steps):
            batch = data[torch.randint(len(data), (min(batch_size, len(data)),), generator=gen)]
            loss, idx, residuals = self._loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            for m in range(self.config.depth):
                usage[m] += torch.bincount(idx[:, m].cpu(), minlength=self.config.codebook_size)
            if (step + 1) % dead_code_window == 0 and step + 1 < steps:
                restarted += self._restart_dead(usage, residuals, gen)
                usage.zero_()
        self.eval()
        self.requires_grad_(False)
        self.config = replace(self.config, fitted=True)
        return {"final_loss": float(loss.item()), "dead_codes_reinitialized": restarted, **self.usage(chunks)}

    def _loss(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        z = self.encoder(x)
        q, idx, residuals = self.quantize(z)
        codebook = sum(F.mse_loss(self.codebooks[m][idx[:, m]], r.detach()) for m, r in enumerate(residuals))
        commit = F.mse_loss(z, q.detach())
        recon = F.mse_loss(self.decoder(z + (q - z).detach()), x)
        return recon + codebook + self.config.commitment * commit, idx, residuals

    @torch.no_grad()
    def _restart_dead(self, usage: torch.Tensor, residuals: list[torch.Tensor], gen: torch.Generator) -> int:
        count = 0
        for m, residual in enumerate(residuals):
            dead = torch.nonzero(usage[m] == 0).flatten()
            if len(dead) == 0:
                continue
            pick = torch.randint(len(residual), (len(dead),), generator=gen)
            noise = torch.randn(len(dead), residual.shape[1], generator=gen) * 1e-3
            self.codebooks[m, dead] = residual[pick].detach() + noise.to(residual)
            count += len(dead)
        return count

    @torch.no_grad()
    def usage(self, chunks: np.ndarray) -> dict[str, Any]:
        """Fraction of codes used and code perplexity per codebook on `chunks`."""
        _, idx, _ = self.quantize(self.encoder(self._units(self._check_shape(chunks))))
        used, perplexity = [], []
        for m in range(self.config.depth):
            counts = torch.bincount(idx[:, m], minlength=self.config.codebook_size).double()
            p = counts / counts.sum()
            used.append(float((counts > 0).double().mean()))
            perplexity.append(float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum())))
        return {"codebook_usage": used, "codebook_perplexity": perplexity}
