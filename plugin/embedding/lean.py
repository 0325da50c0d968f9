"""A lean forward pass for questions and passages on a CPU.

For one short question, `model(features)` spends most of its time around the arithmetic, not
in it: a BERT layer is some forty module calls and small tensor operations, and in bf16
oneDNN lays each weight matrix out afresh on every product. For BERT encoders (bge-small,
MiniLM) `LeanForward` runs the same arithmetic in a dozen operations per layer: query, key and
value fused into one product, weights laid out once when it is built (oneDNN's packed format
for bf16), no attention mask (one question has no padding). Only the transformer is replaced:
pooling and normalisation still run through the model's own modules.

Passages (`LeanForward.batch`) come packed: every token of a batch in one [tokens, width]
matrix, so the products, most of the work, spend nothing on padding; only attention
spreads them into a padded [texts, heads, longest, head width] view, with padded keys masked.

`LeanForward.build` answers None for any model it does not recognise, and the runner compares
its vectors with the module chain's before it uses them (`agrees_with`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("docsync.encoder")
# The vectors of the lean pass and of the module chain must agree at least this well (bf16
# rounding in a different order moves the cosine by about 3e-5; a wrong structure, far more).
AGREEMENT = 0.9995
ROW_STEP = 64  # a packed batch's rows are a multiple of this (see `LeanForward.batch`)
Tensor = Any  # torch.Tensor, without importing torch to type this module


class LeanForward:
    """One text's ids in, its sentence embedding out, through a BERT encoder's weights."""

    def __init__(self, model: Any, auto_model: Any, dtype: Any = None) -> None:
        import torch
        import torch.nn.functional as F

        self._torch = torch
        self._F = F
        config = auto_model.config
        embeddings = auto_model.embeddings
        self._heads = int(config.num_attention_heads)
        self._width = int(config.hidden_size)
        self._eps = float(config.layer_norm_eps)

        def cast(tensor: Tensor) -> Tensor:  # the model's own tensor where dtype is its own
            return tensor.detach().to(dtype) if dtype is not None else tensor.detach()

        self._words = cast(embeddings.word_embeddings.weight)
        # Positions and the one token type a single text has, added once here.
        self._positions = cast(
            embeddings.position_embeddings.weight + embeddings.token_type_embeddings.weight[0]
        )
        self._norm = _norm_weights(embeddings.LayerNorm, cast)
        self._layers = [_Layer.of(layer, cast) for layer in auto_model.encoder.layer]
        self._after = list(model)[1:]  # pooling, normalisation, ... as the model defines them

    @classmethod
    def build(cls, model: Any, dtype: Any = None) -> LeanForward | None:
        """A lean pass over `model`'s weights (copies of them in `dtype`, where given), or
        None where its structure is not a plain BERT encoder on the CPU (anything else keeps
        the module chain)."""
        modules = list(model) if hasattr(model, "__iter__") else []
        auto_model = getattr(modules[0], "auto_model", None) if modules else None
        config = getattr(auto_model, "config", None)
        if config is None or str(getattr(model, "device", "")) != "cpu":
            return None
        plain_bert = (
            getattr(config, "model_type", None) == "bert"
            and getattr(config, "position_embedding_type", "absolute") == "absolute"
            and getattr(config, "hidden_act", None) == "gelu"
            and not getattr(config, "is_decoder", False)
            and not getattr(config, "add_cross_attention", False)
        )
        if not plain_bert:
            return None
        try:
            return cls(model, auto_model, dtype)
        except (AttributeError, RuntimeError, TypeError) as exc:
            log.debug("no lean forward pass for this model: %s", exc)
            return None

    def __call__(self, ids: Sequence[int]) -> Tensor:
        """The model's output features (`sentence_embedding` among them) for one text's ids."""
        torch, F = self._torch, self._F
        count, width, heads = len(ids), self._width, self._heads
        index = torch.tensor(ids, dtype=torch.int64)
        with torch.inference_mode():
            hidden = self._words[index] + self._positions[:count]
            hidden = F.layer_norm(hidden, (width,), *self._norm, self._eps)
            for layer in self._layers:
                # (1, heads, count, head width) each: the shape of CPU's fused attention kernel
                qkv = layer.qkv(hidden).view(1, count, 3, heads, width // heads)
                q, k, v = qkv.permute(2, 0, 3, 1, 4)
                attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
                hidden = layer.attention_out(hidden, attended.reshape(count, width), self._eps)
                hidden = layer.feed_forward(hidden, self._eps)
            features = {
                "input_ids": index[None],
                "attention_mask": torch.ones((1, count), dtype=torch.int64),
                "token_type_ids": torch.zeros((1, count), dtype=torch.int64),
                "token_embeddings": hidden[None],
            }
            for module in self._after:
                features = module(features)
        return features

    def batch(self, flat: Tensor, lengths: Sequence[int]) -> Tensor:
        """Sentence embeddings (float32, one row a text) for a batch of texts given packed:
        every text's ids one after another in `flat`, `lengths` long each. The products run
        on the packed [tokens, width] matrix, so none is spent on padding; only attention
        works on a padded [texts, heads, longest, head width] view, with padded keys masked.
        The packed matrix gets a few blank rows, up to a multiple of `ROW_STEP`: oneDNN keeps
        kernels for every shape it meets, and every token count would be one of its own."""
        torch, F = self._torch, self._F
        rows, longest = len(lengths), max(lengths)
        width, heads = self._width, self._heads
        length = torch.as_tensor(list(lengths), dtype=torch.int64)
        mask = torch.arange(longest)[None, :] < length[:, None]  # [texts, longest]
        places = mask.reshape(-1).nonzero().squeeze(1)  # each packed token's padded row
        count = len(places)
        blank = -count % ROW_STEP
        positions = F.pad(places % longest, (0, blank))
        ragged = bool(min(lengths) != longest)
        keys = mask[:, None, None, :] if ragged else None
        with torch.inference_mode():
            hidden = self._words[F.pad(flat, (0, blank))] + self._positions[positions]
            hidden = F.layer_norm(hidden, (width,), *self._norm, self._eps)
            for layer in self._layers:
                qkv = layer.qkv(hidden)[:count]
                if ragged:
                    spread = qkv.new_zeros((rows * longest, 3 * width))
                    spread[places] = qkv
                    qkv = spread
                qkv = qkv.view(rows, longest, 3, heads, width // heads)
                q, k, v = qkv.permute(2, 0, 3, 1, 4)
                attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
                attended = attended.transpose(1, 2).reshape(rows * longest, width)
                if ragged:
                    attended = attended[places]
                attended = F.pad(attended, (0, 0, 0, blank))
                hidden = layer.attention_out(hidden, attended, self._eps)
                hidden = layer.feed_forward(hidden, self._eps)
            tokens = hidden.new_zeros((rows * longest, width))
            tokens[places] = hidden[:count]
            ids = torch.zeros((rows, longest), dtype=torch.int64)
            ids[mask] = flat
            features = {
                "input_ids": ids,
                "attention_mask": mask.to(torch.int64),
                "token_type_ids": torch.zeros((rows, longest), dtype=torch.int64),
                "token_embeddings": tokens.view(rows, longest, width),
            }
            for module in self._after:
                features = module(features)
            return features["sentence_embedding"].float()

    def agrees_with(
        self, chain: Callable[[Sequence[int]], Tensor], samples: Sequence[Sequence[int]]
    ) -> bool:
        """Whether this pass and the module chain (`chain`: ids to vector) give the same vectors
        for `samples`, within bf16 rounding: each alone (`__call__`, a question's way) and all
        together in one packed batch of unequal lengths (`batch`, the passages' way). A pass
        that fails on this machine (an operator its CPU lacks) does not agree."""
        torch, F = self._torch, self._F
        full = torch.stack([chain(ids).float().reshape(-1) for ids in samples])
        try:
            alone = torch.stack(
                [self(ids)["sentence_embedding"].float().reshape(-1) for ids in samples]
            )
            flat = torch.tensor([i for ids in samples for i in ids], dtype=torch.int64)
            together = self.batch(flat, [len(ids) for ids in samples])
        except (RuntimeError, NotImplementedError, KeyError) as exc:
            log.debug("lean forward pass fails on this machine: %s", exc)
            return False
        for lean in (alone, together):
            cosine = float(F.cosine_similarity(lean, full, dim=1).min())
            if not cosine >= AGREEMENT:
                log.debug("lean forward pass disagrees with the model (cosine %.6f)", cosine)
                return False
        return True


class _Linear:
    """`x @ weight.T + bias` (then GELU, with `gelu`), with the weight laid out once for
    oneDNN where that pays (bf16), and the GELU computed inside oneDNN's product there."""

    def __init__(self, weight: Tensor, bias: Tensor, *, gelu: bool = False) -> None:
        import torch
        import torch.nn.functional as F

        self._gelu = gelu
        self._weight = weight.detach().contiguous()
        self._bias = bias.detach().contiguous()
        self._F = F
        self._packed: Tensor = None
        if self._weight.dtype == torch.bfloat16:
            try:
                self._packed = torch.ops.mkldnn._reorder_linear_weight(self._weight, None)
                self._pointwise = torch.ops.mkldnn._linear_pointwise
            except (AttributeError, RuntimeError):  # a torch built without oneDNN
                self._packed = None

    def __call__(self, x: Tensor) -> Tensor:
        if self._packed is not None:
            if self._gelu:  # "none": the exact (erf) GELU, as BERT's "gelu"
                return self._pointwise(x, self._packed, self._bias, "gelu", [], "none")
            return self._pointwise(x, self._packed, self._bias, "none", [], "")
        out = self._F.linear(x, self._weight, self._bias)
        return self._F.gelu(out) if self._gelu else out


class _Layer:
    """One BERT layer's weights, arranged for the lean pass."""

    def __init__(
        self,
        qkv: _Linear,
        out: _Linear,
        out_norm: tuple[Tensor, Tensor],
        up: _Linear,
        down: _Linear,
        down_norm: tuple[Tensor, Tensor],
    ) -> None:
        import torch.nn.functional as F

        self._F = F
        self.qkv = qkv
        self._out, self._out_norm = out, out_norm
        self._up, self._down, self._down_norm = up, down, down_norm

    @classmethod
    def of(cls, layer: Any, cast: Callable[[Tensor], Tensor]) -> _Layer:
        import torch

        attention = layer.attention.self
        parts = (attention.query, attention.key, attention.value)
        qkv = _Linear(
            cast(torch.cat([p.weight for p in parts])), cast(torch.cat([p.bias for p in parts]))
        )
        output, up, down = layer.attention.output, layer.intermediate.dense, layer.output.dense
        return cls(
            qkv,
            _Linear(cast(output.dense.weight), cast(output.dense.bias)),
            _norm_weights(output.LayerNorm, cast),
            _Linear(cast(up.weight), cast(up.bias), gelu=True),
            _Linear(cast(down.weight), cast(down.bias)),
            _norm_weights(layer.output.LayerNorm, cast),
        )

    def attention_out(self, hidden: Tensor, attended: Tensor, eps: float) -> Tensor:
        return self._F.layer_norm(
            hidden + self._out(attended), hidden.shape[-1:], *self._out_norm, eps
        )

    def feed_forward(self, hidden: Tensor, eps: float) -> Tensor:
        inner = self._down(self._up(hidden))
        return self._F.layer_norm(hidden + inner, hidden.shape[-1:], *self._down_norm, eps)


def _norm_weights(norm: Any, cast: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    return cast(norm.weight), cast(norm.bias)
