from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from st_matryoshka.losses import MatryoshkaRankLoss, MatryoshkaUnsupervisedLoss
from st_matryoshka.losses.matryoshka_rank import rank_loss
from st_matryoshka.models import CachedEmbeddings, MatryoshkaAdaptor

DIM = 16


@pytest.fixture()
def model():
    rng = np.random.default_rng(0)
    texts = [f"t{i}" for i in range(12)]
    torch.manual_seed(0)
    return SentenceTransformer(
        modules=[CachedEmbeddings(texts, rng.normal(size=(12, DIM)).astype("float32")), MatryoshkaAdaptor(DIM)],
        device="cpu",
    ).train()


def test_unsupervised_terms_vanish_at_full_width_for_identity(model):
    loss = MatryoshkaUnsupervisedLoss(model, [DIM], top_k=3)
    terms = loss([model.preprocess([f"t{i}" for i in range(12)])], None)
    assert set(terms) == {"pair", "topk", "reconstruction", "distill"}
    assert all(float(v.detach()) < 1e-5 for v in terms.values())


def test_unsupervised_loss_trains_the_prefix(model):
    loss = MatryoshkaUnsupervisedLoss(model, [DIM, 4], top_k=3)
    features = model.preprocess([f"t{i}" for i in range(12)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        terms = loss([dict(features)], None)
        total = sum(terms.values())
        first = float(total.detach()) if first is None else first
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert float(total.detach()) < 0.7 * first


def test_rank_loss_prefers_relevant_document():
    query = torch.tensor([[1.0, 0.0]])
    docs = torch.tensor([[1.0, 0.1], [0.0, 1.0]])
    good = rank_loss(query, docs, torch.tensor([[1.0, 0.0]]), [2])
    bad = rank_loss(query, docs, torch.tensor([[0.0, 1.0]]), [2])
    assert float(good) < float(bad)
    # graded: a more relevant document weighs more
    assert torch.isclose(rank_loss(query, docs, torch.tensor([[2.0, 0.0]]), [2]), good)
    assert float(rank_loss(query, docs, torch.zeros(1, 2), [2])) == 0.0


def test_margin_rank_loss_is_self_limiting():
    query = torch.tensor([[1.0, 0.0]], requires_grad=True)
    docs = torch.tensor([[1.0, 0.1], [0.0, 1.0]])
    relevance = torch.tensor([[1.0, 0.0]])
    # cosine 0.995 against 0: ranked by more than the margin, so no loss and no gradient (eq. 8 still pushes)
    far = rank_loss(query, docs, relevance, [2], margin=0.5)
    far.backward()
    assert float(far.detach()) == 0.0 and float(query.grad.abs().sum()) == 0.0
    assert float(rank_loss(query, docs, relevance, [2])) > 0.0
    # inside the margin: the hinge is the margin minus the gap, and its gradient pulls
    near = rank_loss(query, docs, relevance, [2], margin=1.5)
    expected = 1.5 - (1.0 / float(torch.tensor([1.0, 0.1]).norm()))
    assert abs(float(near) - expected) < 1e-5


def test_l2sp_term_measures_drift_from_the_weights_at_construction(model):
    loss = MatryoshkaRankLoss(model, [DIM, 8], unsupervised_weight=0.0, l2sp_weight=2.0)
    columns = [model.preprocess(["t0"]), model.preprocess(["t2"])]
    assert float(loss(columns, torch.tensor([[1.0]]))["l2sp"]) == 0.0
    with torch.no_grad():
        model[1].residual[-1].bias.add_(0.5)  # DIM entries moved by 0.5: squared distance DIM / 4
    assert abs(float(loss(columns, torch.tensor([[1.0]]))["l2sp"]) - 2.0 * DIM / 4) < 1e-4
    with pytest.raises(ValueError, match="l2sp_weight must be >= 0"):
        MatryoshkaRankLoss(model, [DIM], l2sp_weight=-1.0)
    with pytest.raises(ValueError, match="margin must be >= 0 or None"):
        MatryoshkaRankLoss(model, [DIM], margin=-0.1)


def test_rank_loss_terms_and_copy_handling(model):
    loss = MatryoshkaRankLoss(model, [DIM, 8], unsupervised_weight=0.5)
    # row 1's positive (t2) is row 0's negative: it must not be pushed away from query t0 as a negative of row 1
    columns = [model.preprocess(["t0", "t1"]), model.preprocess(["t2", "t3"]), model.preprocess(["t4", "t2"])]
    terms = loss(columns, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert set(terms) == {"rank", "pair", "topk", "reconstruction"}
    terms["rank"].backward()
    assert model[1].residual[-1].weight.grad is not None
    assert loss.get_config_dict() == {
        "matryoshka_dims": [DIM, 8],
        "unsupervised_weight": 0.5,
        "top_k": 10,
        "distill_weight": 0.0,
        "memory_size": None,
        "precisions": ["float32"],
        "quantization_weight": 1.0,
        "margin": None,
        "l2sp_weight": 0.0,
    }
    assert "arXiv" in loss.citation or "arxiv" in loss.citation.lower()


def test_rank_loss_label_shape_is_checked(model):
    loss = MatryoshkaRankLoss(model, [DIM])
    columns = [model.preprocess(["t0"]), model.preprocess(["t1"]), model.preprocess(["t2"])]
    with pytest.raises(ValueError, match=r"labels must hold 2 relevance grades per row, got shape \(1, 3\)"):
        loss(columns, torch.ones(1, 3))


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ([16, 0], r"matryoshka_dims must be positive ints, got \[16, 0\]"),
        ([8, 16], r"matryoshka_dims must be strictly descending, got \[8, 16\]"),
        ([], r"matryoshka_dims must be a non-empty list"),
    ],
)
def test_bad_dims(model, dims, message):
    with pytest.raises(ValueError, match=message):
        MatryoshkaUnsupervisedLoss(model, dims)


def test_loss_needs_an_adaptor():
    plain = SentenceTransformer(modules=[CachedEmbeddings(["a", "b"], np.eye(2, dtype="float32"))], device="cpu")
    with pytest.raises(ValueError, match="needs a model with a MatryoshkaAdaptor"):
        MatryoshkaUnsupervisedLoss(plain, [2])([plain.preprocess(["a", "b"])], None)


def test_binary_codes_are_sign_bits_forward_and_identity_backward():
    from st_matryoshka.quantization import quantize_prefix

    x = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1).requires_grad_(True)
    codes = quantize_prefix(x, "binary")
    assert torch.allclose(codes, torch.sign(x.detach()) / 8**0.5)
    codes.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # straight-through: the sign does not stop the gradient
    levels = quantize_prefix(x.detach(), "int8")
    assert torch.allclose(levels, torch.nn.functional.normalize(x.detach(), dim=-1), atol=0.02)
    # The codes trained on, and those the label-free criterion scores, are the ones the index stores.
    from st_matryoshka.evaluation.neighbour_overlap import _code_vectors
    from st_matryoshka.quantization import index_codes

    prefix = x.detach().numpy()
    ranges = np.stack([prefix.min(axis=0), prefix.max(axis=0)])
    stored = torch.from_numpy(index_codes(prefix, "int8", ranges))
    assert torch.allclose(levels, torch.nn.functional.normalize(stored, dim=-1), atol=1e-6)
    again = torch.nn.functional.normalize(x.detach(), dim=-1).numpy()  # the criterion normalises its prefixes
    ranges = np.stack([again.min(axis=0), again.max(axis=0)])
    _, criterion = _code_vectors(x.detach(), x.detach(), "int8")
    assert torch.allclose(criterion, torch.from_numpy(index_codes(again, "int8", ranges)), atol=1e-6)
    _, bits = _code_vectors(x.detach(), torch.zeros(1, 8), "binary")
    assert torch.equal(bits, -torch.ones(1, 8))  # quantize_embeddings packs x > 0: a zero is a 0 bit, -1
    assert torch.equal(quantize_prefix(torch.zeros(1, 8), "binary"), -torch.ones(1, 8) / 8**0.5)
    with pytest.raises(ValueError, match="precisions must be among"):
        quantize_prefix(x, "int4")


def test_quantisation_aware_terms_see_the_codes(model):
    """With binary training, the identity adaptor is no longer loss-free at full width: its sign bits lose detail."""
    texts = [model.preprocess([f"t{i}" for i in range(12)])]
    float_only = MatryoshkaUnsupervisedLoss(model, [DIM], top_k=3)(texts, None)
    with_codes = MatryoshkaUnsupervisedLoss(model, [DIM], top_k=3, precisions=["binary"])(texts, None)
    assert float(float_only["pair"]) < 1e-5 < float(with_codes["pair"])
    # With a cross-batch memory, L_topk takes its neighbours from the memory, for the codes as for the floats.
    memory_terms = {}
    for precisions in (["float32"], ["binary"]):
        loss = MatryoshkaUnsupervisedLoss(model, [DIM], top_k=3, memory_size=24, precisions=precisions)
        loss(texts, None)  # fills the memory
        memory_terms[precisions[0]] = float(loss(texts, None)["topk"])
    assert memory_terms["float32"] < 1e-5 < memory_terms["binary"]
    rank = MatryoshkaRankLoss(model, [DIM, 8], precisions=["binary"], quantization_weight=0.5)
    assert rank.get_config_dict()["precisions"] == ["float32", "binary"]
    with pytest.raises(ValueError, match="precisions must be among"):
        MatryoshkaUnsupervisedLoss(model, [DIM], precisions=["int4"])


def test_bit_thresholds_move_the_codes_terms_only():
    """The float terms compare the output before the bit thresholds (identity adaptor: loss-free at any threshold);
    the code terms see the thresholded output, and only they reach the thresholds."""
    rng = np.random.default_rng(0)
    texts = [f"t{i}" for i in range(12)]
    adaptor = MatryoshkaAdaptor(DIM, bit_thresholds=True)
    model = SentenceTransformer(
        modules=[CachedEmbeddings(texts, rng.normal(size=(12, DIM)).astype("float32") + 1.0), adaptor], device="cpu"
    ).train()
    features = [model.preprocess(texts)]
    with torch.no_grad():
        adaptor.thresholds.normal_()
    float_terms = MatryoshkaUnsupervisedLoss(model, [DIM], top_k=3)(features, None)
    assert all(float(v.detach()) < 1e-5 for v in float_terms.values())
    sum(float_terms.values()).backward()
    assert adaptor.thresholds.grad is None or float(adaptor.thresholds.grad.abs().sum()) == 0.0
    codes = MatryoshkaUnsupervisedLoss(model, [DIM], top_k=3, precisions=["binary"])(features, None)
    sum(codes.values()).backward()
    assert float(adaptor.thresholds.grad.abs().sum()) > 0
