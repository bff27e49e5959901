"""shoplm's own model parts: the n-gram bag classifier, the sparse masked-LM loss and the
replaced-token detection pair."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    ModernBertConfig,
    ModernBertForMaskedLM,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaPreLayerNormConfig,
    RobertaPreLayerNormForMaskedLM,
)

from shoplm.modeling import NgramBagForSequenceClassification
from shoplm.modeling.masked_lm import TokenMasking, mask_for_training, with_masked_positions_loss
from shoplm.modeling.replaced_token_detection import (
    ReplacedTokenDetectionModel,
    corrupt,
    replaced_token_detection,
)

SMALL = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64, "max_position_embeddings": 40, "pad_token_id": 1}
LABELS = {"num_labels": 2, "id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}


def bag_model(seed: int = 0) -> NgramBagForSequenceClassification:
    torch.manual_seed(seed)
    backbone = AutoModelForSequenceClassification.from_config(RobertaPreLayerNormConfig(**SMALL, **LABELS))
    return NgramBagForSequenceClassification.wrapping(backbone, ngram_buckets=4096).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(3, 100, (3, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    return ids, mask


def test_an_empty_bag_leaves_the_backbone_logits_alone_and_learns_from_the_loss() -> None:
    model = bag_model()
    ids, mask = batch()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits,
                              model.backbone(input_ids=ids, attention_mask=mask).logits.float())
    model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss.backward()
    assert model.ngram_weights.weight.grad is not None and model.ngram_weights.weight.grad.abs().sum() > 0


def test_the_bag_ignores_padding_and_counts_only_ngrams_inside_the_text() -> None:
    model = bag_model()
    with torch.no_grad():
        model.ngram_weights.weight.normal_()
    ids, mask = batch()
    padded_ids = torch.cat([ids, torch.full((3, 5), 1)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros((3, 5), dtype=torch.long)], dim=1)
    with torch.no_grad():
        plain = model.ngram_logits(ids, mask)
        padded = model.ngram_logits(padded_ids, padded_mask)
        alone = model.ngram_logits(ids[:1, :7], mask[:1, :7])
    assert torch.allclose(plain, padded, atol=1e-5)
    assert torch.allclose(plain[:1], alone, atol=1e-5)  # row 0's masked tail contributes nothing
    assert not torch.allclose(plain[1], plain[2])


def test_a_presence_bag_counts_each_distinct_ngram_of_a_text_once() -> None:
    model = bag_model()
    model.config.ngram_orders = [1, 2]
    with torch.no_grad():
        model.ngram_weights.weight.normal_()
    repeated = torch.tensor([[5, 6, 5, 6, 5, 6, 1, 1]])  # 5 6 three times, then padding
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]])
    once = torch.tensor([[5, 6, 5]])  # the same distinct n-grams: 5, 6, (5 6), (6 5)
    with torch.no_grad():
        counted = model.ngram_logits(repeated, mask)
        model.config.ngram_presence = True
        present = model.ngram_logits(repeated, mask)
        alone = model.ngram_logits(once, torch.ones_like(once))
        swapped = model.ngram_logits(torch.tensor([[6, 5, 6, 5, 6, 5]]), torch.ones(1, 6, dtype=torch.long))
    assert torch.allclose(present, alone, atol=1e-5)
    assert torch.allclose(present, swapped, atol=1e-5)  # the same set of n-grams in another order
    assert not torch.allclose(present, counted, atol=1e-3)  # by occurrence: 11 n-grams, not 4


def test_a_row_longer_than_the_backbone_positions_gives_it_head_and_tail_and_the_bag_everything() -> None:
    model = bag_model()
    with torch.no_grad():
        model.ngram_weights.weight.normal_()
    limit = SMALL["max_position_embeddings"] - SMALL["pad_token_id"] - 1  # RoBERTa's usable positions
    ids = torch.randint(3, 100, (4, limit + 12), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # a short, right-padded row
    mask[2, :-10] = 0  # a short, left-padded row
    mask[3, :5] = 0  # a long, left-padded row
    head = limit // 2
    with torch.no_grad():
        view_ids, view_mask = model.backbone_view(ids, mask)
        logits = model(input_ids=ids, attention_mask=mask).logits
        expected = model.backbone(input_ids=view_ids, attention_mask=view_mask).logits.float()
        expected += model.ngram_logits(ids, mask)
    assert view_ids.shape == (4, limit)
    assert torch.equal(view_ids[0], torch.cat([ids[0, :head], ids[0, -(limit - head):]]))
    assert torch.equal(view_ids[1, :10], ids[1, :10]) and view_mask[1].sum() == 10
    assert torch.equal(view_ids[2, -10:], ids[2, -10:]) and view_mask[2].sum() == 10
    assert torch.equal(view_ids[3], torch.cat([ids[3, 5 : 5 + head], ids[3, -(limit - head):]]))
    assert bool(view_mask[3].all())
    assert torch.allclose(logits, expected, atol=1e-5)
    # The bag counts n-grams of the whole row, beyond what the backbone sees.
    assert not torch.allclose(model.ngram_logits(ids, mask)[0], model.ngram_logits(view_ids, view_mask)[0])


def test_a_saved_bag_classifier_loads_through_the_auto_class(tmp_path: Path) -> None:
    model = bag_model()
    with torch.no_grad():
        model.ngram_weights.weight.normal_()
    ids, mask = batch()
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path)

    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()

    assert isinstance(loaded, NgramBagForSequenceClassification)
    assert loaded.config.id2label == {0: "negative", 1: "positive"}
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids, attention_mask=mask).logits, before, atol=1e-5)


@pytest.mark.parametrize(
    ("config_class", "model_class"),
    [(RobertaConfig, RobertaForMaskedLM), (RobertaPreLayerNormConfig, RobertaPreLayerNormForMaskedLM),
     (ModernBertConfig, ModernBertForMaskedLM), (BertConfig, BertForMaskedLM)],
)
def test_the_masked_positions_loss_equals_the_stock_loss(config_class, model_class) -> None:
    config = config_class(**SMALL)
    torch.manual_seed(0)
    stock = model_class(config).eval()
    sparse = with_masked_positions_loss(config)(config).eval()
    sparse.load_state_dict(stock.state_dict())
    ids, _ = batch()
    labels = torch.full_like(ids, -100)
    labels[:, ::3] = ids[:, ::3]

    with torch.no_grad():
        expected = stock(input_ids=ids, labels=labels).loss
        mean = sparse(input_ids=ids, labels=labels).loss
        # With the Trainer's count of labelled tokens over a global batch twice this size.
        global_mean = sparse(input_ids=ids, labels=labels, num_items_in_batch=torch.tensor(24)).loss

    assert type(sparse).__name__ == model_class.__name__  # saved configs name the stock class
    assert torch.allclose(mean, expected, atol=1e-6)
    assert torch.allclose(global_mean * 2, expected, atol=1e-6)


def masked_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs with positions 2 and 5 of every row masked (id 4), and labels holding the originals."""
    original, mask = batch()
    labels = torch.full_like(original, -100)
    labels[:, [2, 5]] = original[:, [2, 5]]
    inputs = original.clone()
    inputs[:, [2, 5]] = 4
    return inputs, mask, labels


def test_corruption_fills_masked_positions_with_generator_samples_and_flags_the_wrong_ones() -> None:
    inputs, _, labels = masked_batch()
    originals = labels[labels != -100]
    sure_of_original = torch.full((len(originals), 100), -1e4)
    sure_of_original[torch.arange(len(originals)), originals] = 0.0
    corrupted, replaced = corrupt(inputs, labels, sure_of_original)
    # A correct guess restores the text and counts as original.
    assert torch.equal(corrupted, torch.where(labels != -100, labels, inputs)) and not replaced.any()

    wrong = (originals + 1) % 100
    sure_of_another = torch.full((len(originals), 100), -1e4)
    sure_of_another[torch.arange(len(originals)), wrong] = 0.0
    corrupted, replaced = corrupt(inputs, labels, sure_of_another)
    assert torch.equal(replaced, labels != -100)
    assert torch.equal(corrupted[labels != -100], wrong)
    assert torch.equal(corrupted[labels == -100], inputs[labels == -100])


@pytest.mark.parametrize("config_class", [RobertaPreLayerNormConfig, RobertaConfig, BertConfig])
def test_replaced_token_detection_shares_embeddings_and_trains_both_parts(tmp_path: Path, config_class) -> None:
    torch.manual_seed(0)
    model = replaced_token_detection(config_class(**SMALL), generator_layers=1)
    prefix = model.discriminator.base_model_prefix
    encoder, generator = getattr(model.discriminator, prefix), getattr(model.generator, prefix)
    assert encoder.embeddings is generator.embeddings and len(generator.encoder.layer) == 1
    assert model.generator.get_output_embeddings().weight is encoder.embeddings.word_embeddings.weight
    inputs, mask, labels = masked_batch()
    output = model(input_ids=inputs, attention_mask=mask, labels=labels)
    assert output.logits.shape == inputs.shape  # one replaced-or-not logit per token
    output.loss.backward()
    for part in (model.discriminator.classifier, encoder.encoder.layer[1], generator.encoder.layer[0],
                 encoder.embeddings.word_embeddings):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    with pytest.raises(ValueError, match="labels are required"):
        model(input_ids=inputs, attention_mask=mask)

    # Saved once, tied again on load (the Trainer's checkpoints and resume go through this).
    model.save_pretrained(tmp_path / "pair")
    loaded = ReplacedTokenDetectionModel.from_pretrained(tmp_path / "pair")
    assert getattr(loaded.generator, prefix).embeddings is getattr(loaded.discriminator, prefix).embeddings
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_token_masking_chooses_only_candidates_at_the_given_rate_bert_style() -> None:
    torch.manual_seed(0)
    ids = torch.randint(5, 100, (64, 200))
    labels = ids.clone()
    labels[:, :2] = -100  # special tokens / padding: never masked
    masked, masked_labels = TokenMasking(mask_token_id=4, vocab_size=100, probability=0.15)(ids, labels)
    chosen = masked_labels != -100
    assert not chosen[:, :2].any() and torch.equal(masked[:, :2], ids[:, :2])
    assert torch.equal(masked_labels[chosen], ids[chosen])  # labels hold the originals
    assert torch.equal(masked[~chosen], ids[~chosen])  # nothing else changes
    rate = chosen.float().sum() / (labels != -100).sum()
    as_mask = (masked[chosen] == 4).float().mean()
    kept = (masked[chosen] == ids[chosen]).float().mean()  # left as is, or a random draw of the same id
    assert abs(rate - 0.15) < 0.01 and abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02


def test_the_loss_divisor_weighs_each_micro_batch_by_its_share_of_the_global_batch() -> None:
    torch.manual_seed(0)
    ids = torch.randint(5, 100, (4, 50))
    masking = TokenMasking(mask_token_id=4, vocab_size=100, probability=0.2)
    _, labels, divisor = mask_for_training(masking, ids, ids.clone(), None)
    masked = (labels != -100).sum()
    assert divisor == masked  # alone: the mean over its masked tokens
    # A quarter of the global batch's 800 candidates: its masked tokens count as a quarter.
    _, labels, divisor = mask_for_training(masking, ids, ids.clone(), torch.tensor(800))
    assert torch.isclose(divisor.float(), (labels != -100).sum() * 4.0)
    # Batches masked beforehand divide by the global masked count as given.
    _, _, divisor = mask_for_training(None, ids, labels, torch.tensor(123))
    assert divisor == 123


def test_whole_word_masking_chooses_every_token_of_a_word_together_at_the_same_rate() -> None:
    torch.manual_seed(0)
    ids = torch.randint(5, 100, (64, 200))
    labels = ids.clone()
    labels[:, :2] = -100
    # Words of three tokens: positions 2-4, 5-7, ... share their first position.
    starts = torch.arange(200).expand(64, 200).clone()
    starts[:, 2:] = 2 + (starts[:, 2:] - 2) // 3 * 3
    # A mask id outside the random draws' range, so a [MASK] comes from the word's fate alone.
    masked, masked_labels = TokenMasking(mask_token_id=100, vocab_size=100, probability=0.15)(ids, labels, starts)
    chosen = (masked_labels != -100)[:, 2:200 - (198 % 3)].reshape(64, -1, 3)
    as_mask = (masked == 100)[:, 2:200 - (198 % 3)].reshape(64, -1, 3)
    assert torch.equal(chosen.all(-1), chosen.any(-1))  # a word is masked whole or not at all
    assert torch.equal(as_mask.all(-1), as_mask.any(-1))  # with one fate: [MASK] for all of it or none
    rate = (masked_labels != -100).float().sum() / (labels != -100).sum()
    assert abs(rate - 0.15) < 0.02
