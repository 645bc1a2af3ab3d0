import pytest
import torch

from workbench.activations import extract, last_token_index, tokenize
from workbench.model import hook_name

TEXTS = ["hello there", "a much longer sentence than the first one, with commas", "x", "values matter"]


def test_shape_and_dtype(tiny_model):
    acts = extract(tiny_model, TEXTS, progress=False)
    assert acts.shape == (4, tiny_model.cfg.n_layers, tiny_model.cfg.d_model)
    assert acts.dtype == torch.float32


def test_batched_equals_one_at_a_time(tiny_model):
    batched = extract(tiny_model, TEXTS, batch_size=4, progress=False)
    single = torch.cat([extract(tiny_model, [t], progress=False) for t in TEXTS])
    assert torch.allclose(batched, single, atol=1e-4)


def test_layer_subset_equals_slice_of_all(tiny_model):
    full = extract(tiny_model, TEXTS, progress=False)
    sub = extract(tiny_model, TEXTS, layers=[2, 0], progress=False)
    assert torch.allclose(sub, full[:, [2, 0]], atol=1e-6)


def test_matches_run_with_cache_last_token(tiny_model):
    ids = tiny_model.tokenizer(TEXTS[1], return_tensors="pt", add_special_tokens=False)["input_ids"]
    _, cache = tiny_model.run_with_cache(ids)
    acts = extract(tiny_model, [TEXTS[1]], progress=False)
    for layer in range(tiny_model.cfg.n_layers):
        assert torch.allclose(acts[0, layer], cache[f"blocks.{layer}.hook_resid_post"][0, -1], atol=1e-5)


def tl_hook_reference(model, texts, layers):
    """The TransformerLens path: resid_post hooks through model.hooks on one left-padded batch."""
    ids, mask = tokenize(model, texts)
    rows, last, seen = torch.arange(len(texts)), last_token_index(mask), {}
    hooks = [(hook_name(layer), lambda x, hook, layer=layer: seen.__setitem__(layer, x[rows, last].clone()))
             for layer in layers]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        model(ids, attention_mask=mask)
    return torch.stack([seen[layer] for layer in layers], dim=1)


@pytest.mark.parametrize("layers", [None, [2, 0], [1]])
def test_fast_path_equals_transformer_lens_hooks_on_a_padded_batch(tiny_model, layers):
    want = list(range(tiny_model.cfg.n_layers)) if layers is None else layers
    reference = tl_hook_reference(tiny_model, TEXTS, want)
    got = extract(tiny_model, TEXTS, layers=layers, batch_size=len(TEXTS), progress=False)
    torch.testing.assert_close(got, reference, rtol=0, atol=1e-6)


def test_last_token_index_any_padding_side():
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    assert last_token_index(left).tolist() == [3, 3]
    assert last_token_index(right).tolist() == [1, 2]


def test_disk_cache_round_trip_and_damaged_entry_rebuilt(tiny_model, tmp_path):
    first = extract(tiny_model, TEXTS, cache=tmp_path, progress=False)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    files[0].write_bytes(b"truncated")
    again = extract(tiny_model, TEXTS, cache=tmp_path, progress=False)
    assert torch.equal(first, again)
    assert torch.equal(extract(tiny_model, TEXTS, cache=tmp_path, progress=False), first)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"texts": []}, "No texts"), ({"layers": [99]}, "out of range"), ({"layers": []}, "layers is empty"),
     ({"texts": ["ok", ""]}, "non-empty")],
)
def test_bad_arguments(tiny_model, kwargs, message):
    args = {"texts": TEXTS, **kwargs}
    with pytest.raises(ValueError, match=message):
        extract(tiny_model, args.pop("texts"), progress=False, **args)


def test_extraction_inside_a_hook_context_sees_the_callers_hooks(tiny_model):
    plain = extract(tiny_model, TEXTS, layers=[1, 2], progress=False)
    with tiny_model.hooks(fwd_hooks=[(hook_name(1), lambda x, hook: x + 1.0)]):
        shifted = extract(tiny_model, TEXTS, layers=[1], progress=False)
    torch.testing.assert_close(shifted[:, 0], plain[:, 0] + 1.0)
