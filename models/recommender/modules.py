"""The two models, PyTorch modules that save to and load from the Hub (`PyTorchModelHubMixin`).

`DotProductBias`: latent factors + biases through a sigmoid range, optionally with SVD++'s
implicit term and, while training, the movies' side features (`ItemFeatures`); `EmbeddingNN`:
concatenated embeddings + an MLP (fast.ai's CollabNN). `build` makes the one a `Recipe` names;
`MODEL_TYPES` maps config.json's `model_type` to its class.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from models.recommender.config import Recipe

Y_RANGE = (0.0, 5.5)  # fast.ai's sigmoid range: a little beyond the 1-5 stars at both ends
CARD_TAGS = ["recommendation", "collaborative-filtering", "movielens", "fastai-course"]


def emb_size(n: int) -> int:
    """fast.ai's rule of thumb for an embedding width of `n` categories."""
    return min(600, round(1.6 * n**0.56))


class DotProductBias(nn.Module, PyTorchModelHubMixin, library_name="pytorch", tags=CARD_TAGS):
    """rating = sigmoid_range(user · item + user bias + item bias + global bias).

    implicit=True adds what a user chose to rate to their vector (Koren's SVD++): user =
    own factors + the normalised sum of `item_implicit` over the movies they rated. Training
    adds that sum through `offset`; `bake` then folds it into `user_factors`, so the saved model
    predicts for known users like a plain dot product, and `item_implicit` is kept for new
    users (fold-in). Side features work the same way on the movies' side: `item_offset` while
    training, then `bake_items`; the saved model is a plain DotProductBias either way.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int = 50,
        y_range: tuple = Y_RANGE,
        implicit: bool = False,
    ) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        # The global bias lets the user/item biases stay small (they are decayed towards 0).
        self.bias = nn.Parameter(torch.zeros(()))
        self.y_range = tuple(y_range)
        nn.init.normal_(self.user_factors.weight, std=0.01)
        nn.init.normal_(self.item_factors.weight, std=0.01)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.item_implicit = nn.Embedding(n_items, n_factors) if implicit else None
        if implicit:
            nn.init.zeros_(self.item_implicit.weight)
        self.offset: torch.Tensor | None = None  # per-user implicit term while training
        # per-movie side-feature terms (factors, bias) while training
        self.item_offset: tuple[torch.Tensor, torch.Tensor] | None = None

    def implicit_offsets(self, rated: Rated) -> torch.Tensor:
        """Each user's implicit term: `rated` (users x items, sparse) @ item_implicit."""
        return rated.matmul(self.item_implicit.weight)

    @torch.no_grad()
    def bake(self, rated: Rated) -> None:
        """Fold the implicit terms into the user factors (end of training)."""
        self.user_factors.weight += self.implicit_offsets(rated)
        self.offset = None

    @torch.no_grad()
    def bake_items(self, features: ItemFeatures) -> None:
        """Fold the side-feature terms into the movies' factors and biases (end of training)."""
        vecs, bias = features()
        self.item_factors.weight += vecs
        self.item_bias.weight += bias[:, None]
        self.item_offset = None

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u = self.user_factors(users)
        if self.offset is not None:
            u = u + self.offset[users]
        v, b = self.item_factors(items), self.item_bias(items)[..., 0]
        if self.item_offset is not None:
            v, b = v + self.item_offset[0][items], b + self.item_offset[1][items]
        z = (u * v).sum(-1) + self.user_bias(users)[..., 0] + b + self.bias
        return sigmoid_range(z, self.y_range)


class ItemFeatures(nn.Module):
    """Side features of the movies (data.item_features: genres, release year) as embeddings:
    each movie's factors and bias get the weighted sum of its features' embeddings, which
    movies of a kind share. Training only: `DotProductBias.bake_items` folds them in."""

    def __init__(self, features: np.ndarray, n_factors: int) -> None:
        super().__init__()
        self.register_buffer("features", torch.as_tensor(features, dtype=torch.float32))
        self.vecs = nn.Parameter(torch.zeros(features.shape[1], n_factors))
        self.bias = nn.Parameter(torch.zeros(features.shape[1]))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features @ self.vecs, self.features @ self.bias


class Rated:
    """Who rated what: a users x items matrix with rows scaled by 1/sqrt(count), as CSR
    matrices both ways, so that `matmul` and its gradient are CSR products (torch's COO ones
    are several times slower on a CPU)."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> None:
        counts = np.bincount(users, minlength=n_users).astype(np.float32)
        weights = torch.tensor(1 / np.sqrt(counts[users]))
        index = torch.tensor(np.stack([users, items]), dtype=torch.int64)
        coo = torch.sparse_coo_tensor(index, weights, (n_users, n_items), check_invariants=True)
        with warnings.catch_warnings():  # "CSR support is in beta": products are all we use
            warnings.simplefilter("ignore", UserWarning)
            self.csr = coo.coalesce().to_sparse_csr()
            self.csr_t = coo.t().coalesce().to_sparse_csr()

    def matmul(self, weights: torch.Tensor) -> torch.Tensor:
        return _RatedMatmul.apply(weights, self)


class _RatedMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weights: torch.Tensor, rated: Rated) -> torch.Tensor:
        ctx.rated = rated
        return rated.csr @ weights

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.rated.csr_t @ grad, None


class EmbeddingNN(nn.Module, PyTorchModelHubMixin, library_name="pytorch", tags=CARD_TAGS):
    """rating = sigmoid_range(MLP([user embedding, item embedding])), fast.ai's CollabNN."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_size: int,
        item_size: int,
        hidden: tuple = (100,),
        dropout: float = 0.3,
        emb_dropout: float = 0.2,
        y_range: tuple = Y_RANGE,
    ) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, user_size)
        self.item_factors = nn.Embedding(n_items, item_size)
        self.emb_dropout = nn.Dropout(emb_dropout)
        layers, width = [], user_size + item_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.layers = nn.Sequential(*layers, nn.Linear(width, 1))
        self.y_range = tuple(y_range)
        nn.init.normal_(self.user_factors.weight, std=0.01)
        nn.init.normal_(self.item_factors.weight, std=0.01)

    def score(self, user_vecs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Ratings from user embeddings (one per item, or one broadcast to all)."""
        item_vecs = self.item_factors(items)
        user_vecs = user_vecs.expand(len(item_vecs), -1)
        x = self.emb_dropout(torch.cat([user_vecs, item_vecs], -1))
        return sigmoid_range(self.layers(x)[..., 0], self.y_range)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.score(self.user_factors(users), items)


def sigmoid_range(x: torch.Tensor, y_range: tuple) -> torch.Tensor:
    lo, hi = y_range
    return torch.sigmoid(x) * (hi - lo) + lo


MODEL_TYPES = {"dot": DotProductBias, "nn": EmbeddingNN}  # config.MODELS


def build(recipe: Recipe, n_users: int, n_items: int, y_range: tuple = Y_RANGE) -> nn.Module:
    """The untrained model of `recipe` for `n_users` x `n_items` ids."""
    if recipe.model == "dot":
        return DotProductBias(n_users, n_items, recipe.factors, y_range, recipe.implicit)
    return EmbeddingNN(
        n_users, n_items, emb_size(n_users), emb_size(n_items),
        tuple(recipe.hidden), recipe.dropout, recipe.emb_dropout, y_range,
    )  # fmt: skip
