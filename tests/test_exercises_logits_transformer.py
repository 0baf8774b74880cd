"""Checkers of notebooks 02 and 03: pass on the reference, fail on a stub and on a typical mistake."""

import pytest
import torch
import torch.nn.functional as F

from lib.exercises import ExerciseFailed
from lib.exercises.logits import check_greedy_generate, check_softmax, check_temperature, check_top_k, check_top_p
from lib.exercises.transformer import check_block, check_causal_attention, check_layer_norm, check_mlp
from lib.core.model import GPT, GPTConfig
from lib.core.sampling import apply_temperature, top_k_filter, top_p_filter


pytestmark = pytest.mark.usefixtures("strict_checkers")


def stub(*args):
    raise NotImplementedError


def test_logits_checkers():
    check_softmax(lambda x: x.softmax(-1))
    check_temperature(apply_temperature)
    check_top_k(top_k_filter)
    check_top_p(top_p_filter)
    for checker in (check_softmax, check_temperature, check_top_k, check_top_p):
        with pytest.raises(ExerciseFailed, match="not written yet"):
            checker(stub)
    with pytest.raises(ExerciseFailed, match="large logits"):
        check_softmax(lambda x: x.exp() / x.exp().sum(-1, keepdim=True))  # overflows

    def top_p_drops_crossing_token(logits, p):
        probs, order = logits.softmax(-1).sort(-1, descending=True)
        drop = probs.cumsum(-1) > p
        return logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))

    with pytest.raises(ExerciseFailed, match="crosses p"):
        check_top_p(top_p_drops_crossing_token)
    with pytest.raises(ExerciseFailed):
        check_temperature(lambda logits, t: logits * t)


def test_greedy_generate_checker():
    torch.manual_seed(0)
    model = GPT(GPTConfig(d_vocab=20, n_ctx=32, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32)).eval()
    prompt = torch.tensor([[1, 2, 3]])

    def good(model, tokens, n):
        for _ in range(n):
            tokens = torch.cat([tokens, model(tokens)[:, -1].argmax(-1, keepdim=True)], 1)
        return tokens

    def first_position(model, tokens, n):
        for _ in range(n):
            tokens = torch.cat([tokens, model(tokens)[:, 0].argmax(-1, keepdim=True)], 1)
        return tokens

    check_greedy_generate(good, model, prompt)
    with pytest.raises(ExerciseFailed):
        check_greedy_generate(stub, model, prompt)
    with pytest.raises(ExerciseFailed, match="LAST position"):
        check_greedy_generate(first_position, model, prompt)


def ref_layer_norm(x, w, b, eps):
    x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * w + b


def ref_attention(x, attn, masked_value=float("-inf")):
    q = torch.einsum("bpd,hde->bhpe", x, attn.W_Q) + attn.b_Q[:, None]
    k = torch.einsum("bpd,hde->bhpe", x, attn.W_K) + attn.b_K[:, None]
    v = torch.einsum("bpd,hde->bhpe", x, attn.W_V) + attn.b_V[:, None]
    scores = q @ k.transpose(-1, -2) / attn.cfg.d_head**0.5
    n = x.shape[1]
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), masked_value)
    z = scores.softmax(-1) @ v
    return torch.einsum("bhpe,hed->bpd", z, attn.W_O) + attn.b_O


def ref_mlp(x, mlp):
    return F.gelu(x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out


def ref_block(resid, block):
    resid = resid + block.attn(block.ln1(resid))
    return resid + block.mlp(block.ln2(resid))


def test_transformer_checkers():
    check_layer_norm(ref_layer_norm)
    check_causal_attention(ref_attention)
    check_mlp(ref_mlp)
    check_block(ref_block)
    for checker in (check_layer_norm, check_causal_attention, check_mlp, check_block):
        with pytest.raises(ExerciseFailed, match="not written yet"):
            checker(stub)
    with pytest.raises(ExerciseFailed):  # unbiased variance / std without eps
        check_layer_norm(lambda x, w, b, eps: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True) * w + b)
    with pytest.raises(ExerciseFailed):  # masking with 0 leaks the future
        check_causal_attention(lambda x, attn: ref_attention(x, attn, masked_value=0.0))
    with pytest.raises(ExerciseFailed):  # ReLU instead of GELU
        check_mlp(lambda x, mlp: F.relu(x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out)
    with pytest.raises(ExerciseFailed, match="normalise the INPUT"):  # post-LN
        check_block(lambda r, blk: blk.ln2(blk.ln1(r + blk.attn(r)) + blk.mlp(blk.ln1(r + blk.attn(r)))))
