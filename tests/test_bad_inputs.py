"""Bad inputs across the public API of the foundation, method and task modules.

Each case calls one public function with one bad argument and asserts three things: the exception
follows the course's convention (TypeError for the kind of a value, ValueError for its value),
its message names the argument, and nothing was left changed (model modes, KV caches, files;
see the ``test_state_*`` tests). Tiny models only: the whole file runs in seconds.
"""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lib.core import bpe, interp, model, plotting, sampling, stats, token_plot, training  # noqa: E402
from lib.experiments import pointer_runs, text_runs  # noqa: E402
from lib.methods import dense, encdec, fillers, future_loss, thought_training, thoughts  # noqa: E402
from lib.tasks import path_star, pointer_task, references  # noqa: E402
from lib.methods.looped import LoopedGPT  # noqa: E402

V, CTX = 20, 12
CFG = model.GPTConfig(d_vocab=V, n_ctx=CTX, d_model=8, n_layers=2, n_heads=2, d_head=4, d_mlp=16)
ED_CFG = encdec.EncDecConfig(d_vocab=V, n_ctx=CTX, d_model=8, n_enc_layers=1, n_dec_layers=1, n_heads=2, d_head=4, d_mlp=16)
NAN = float("nan")


def gpt(cfg=CFG):
    torch.manual_seed(0)
    return model.GPT(cfg)


GPT = gpt()
ED = encdec.EncoderDecoderGPT(ED_CFG)
T = torch.randint(0, V, (2, 6), generator=torch.Generator().manual_seed(0))
LOGITS = torch.randn(2, V)
LOGITS3 = torch.randn(2, 6, V)
DATA = torch.randint(0, V, (200,), generator=torch.Generator().manual_seed(1))
TCFG = training.TrainConfig(max_steps=2, warmup_steps=1, progress=False)
PS = path_star.PathStarSpec()
PS_BATCH = path_star.sample_path_star(PS, 3, torch.Generator().manual_seed(0))
PT = pointer_task.PointerSpec()
PT_BATCH = pointer_task.sample_pointer_batch(PT, 4, torch.Generator().manual_seed(0), "pause")
TOK = bpe.BPETokenizer.train("hello world, hello there! " * 20, 270, special_tokens=["<|endoftext|>"])
E = torch.randn(2, 6, 8)
TH, PAD = V - 1, 0  # thought and padding ids for the thought functions
LENS = torch.full((2,), 6)
START = thoughts.start_batch(GPT, T, LENS, TH, PAD)


def targets(fill=-100, dtype=torch.long):
    return torch.full((2, 6), fill, dtype=dtype)


def train_with_optimizer_of(params):
    """``train`` on a fresh model with an optimizer over ``params(model)``."""
    m = gpt()
    return training.train(m, lambda s: T, TCFG, optimizer=torch.optim.AdamW(params(m)))


# (name, call, exception, regex that must name the argument)
CASES = [
    # ---------------------------------------------------------------- model: config and blocks
    ("GPTConfig ln_eps < 0 (NaN logits)", lambda: model.GPTConfig(ln_eps=-1.0), ValueError, r"GPTConfig\.ln_eps"),
    ("GPTConfig ln_eps NaN", lambda: model.GPTConfig(ln_eps=NAN), ValueError, r"GPTConfig\.ln_eps"),
    ("GPTConfig init_std 0", lambda: model.GPTConfig(init_std=0.0), ValueError, r"GPTConfig\.init_std"),
    ("GPTConfig n_layers str", lambda: model.GPTConfig(n_layers="2"), TypeError, r"GPTConfig\.n_layers"),
    ("GPTConfig n_heads bool", lambda: model.GPTConfig(n_heads=True), TypeError, r"GPTConfig\.n_heads"),
    ("GPTConfig use_sdpa str", lambda: model.GPTConfig(use_sdpa="yes"), TypeError, r"GPTConfig\.use_sdpa"),
    ("GPT from a dict", lambda: model.GPT({"d_model": 8}), TypeError, "GPTConfig"),
    ("GPT from EncDecConfig", lambda: model.GPT(ED_CFG), TypeError, "EncoderDecoderGPT"),
    ("tokens float", lambda: GPT(T.float()), TypeError, "tokens"),
    ("tokens list", lambda: GPT([[1, 2]]), TypeError, "tokens"),
    ("tokens 1-D", lambda: GPT(T[0]), ValueError, "tokens"),
    ("tokens id = d_vocab", lambda: GPT(T + V), ValueError, "tokens"),
    ("tokens id -5", lambda: GPT(T - 5), ValueError, "tokens"),
    ("tokens empty", lambda: GPT(T[:, :0]), ValueError, "empty"),
    ("tokens past n_ctx", lambda: GPT(torch.zeros(1, CTX + 1, dtype=torch.long)), ValueError, "n_ctx"),
    ("input_embeds float64", lambda: GPT(input_embeds=torch.zeros(2, 3, 8, dtype=torch.float64)), TypeError, "input_embeds"),
    ("input_embeds NaN", lambda: GPT(input_embeds=torch.full((2, 3, 8), NAN)), ValueError, "input_embeds"),
    ("input_embeds inf", lambda: GPT(input_embeds=torch.full((2, 3, 8), math.inf)), ValueError, "input_embeds"),
    ("both tokens and embeds", lambda: GPT(T, input_embeds=torch.zeros(2, 6, 8)), ValueError, "tokens or input_embeds"),
    ("return_type typo", lambda: GPT(T, return_type="logit"), ValueError, "return_type"),
    ("return_type typo (before any work)", lambda: GPT(T + V, return_type="logit"), ValueError, "return_type"),
    ("targets float", lambda: GPT(T, return_type="loss", targets=targets(1, torch.float)), TypeError, "targets"),
    ("targets all -100 (NaN loss)", lambda: GPT(T, return_type="loss", targets=targets()), ValueError, "targets"),
    ("targets -5", lambda: GPT(T, return_type="loss", targets=targets(-5)), ValueError, "targets"),
    ("targets = d_vocab", lambda: GPT(T, return_type="loss", targets=targets(V)), ValueError, "targets"),
    ("targets shape", lambda: GPT(T, return_type="loss", targets=targets(1)[:, :3]), ValueError, "targets"),
    ("targets unused", lambda: GPT(T, targets=targets(1)), ValueError, "targets"),
    ("loss of embeds alone", lambda: GPT(input_embeds=torch.zeros(2, 3, 8), return_type="loss"), ValueError, "tokens or targets"),
    ("kv_cache str", lambda: GPT(T, kv_cache="cache"), TypeError, "kv_cache"),
    ("kv_cache too few layers", lambda: GPT(T, kv_cache=model.KVCache(1)), ValueError, "kv_cache"),
    ("KVCache 0 layers", lambda: model.KVCache(0), ValueError, "n_layers"),
    ("KVCache bool layers", lambda: model.KVCache(True), TypeError, "n_layers"),
    ("KVCache layer out of range", lambda: model.KVCache(2).append(5, torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4)), ValueError, "layer"),
    ("KVCache v shape", lambda: model.KVCache(2).append(0, torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 3)), ValueError, "v must"),
    ("KVCache select float", lambda: model.KVCache(2).select(torch.tensor([0.0])), TypeError, "batch_index"),
    ("LayerNorm wrong width", lambda: GPT.ln_final(torch.zeros(2, 3, 5)), ValueError, "x must have shape"),
    ("LayerNorm int input", lambda: GPT.ln_final(torch.zeros(2, 3, 8, dtype=torch.long)), TypeError, "x must be a floating"),
    ("Attention 2-D input", lambda: GPT.blocks[0].attn(torch.zeros(3, 8)), ValueError, "x must have shape"),
    ("Attention key_input misaligned", lambda: GPT.blocks[0].attn(torch.zeros(1, 3, 8), key_input=torch.zeros(1, 4, 8)), ValueError, "key_input"),
    ("MLP str", lambda: GPT.blocks[0].mlp("x"), TypeError, "x must be a floating"),
    ("Embed float", lambda: GPT.embed(T.float()), TypeError, "tokens"),
    ("Embed out of range", lambda: GPT.embed(T + V), ValueError, "tokens"),
    ("PosEmbed past n_ctx", lambda: GPT.pos_embed(1, CTX + 1), ValueError, "n_ctx"),
    ("PosEmbed float length", lambda: GPT.pos_embed(1, 2.0), TypeError, "seq_len"),
    ("Unembed wrong width", lambda: GPT.unembed(torch.zeros(2, 5)), ValueError, "x must have shape"),
    ("loss logits int", lambda: model.GPT.loss(LOGITS3.long(), T), TypeError, "logits"),
    ("per_token_log_probs float tokens", lambda: model.per_token_log_probs(LOGITS3, T.float()), TypeError, "tokens"),
    ("per_token_log_probs id too big", lambda: model.per_token_log_probs(LOGITS3, T + V), ValueError, "tokens"),
    ("count_params str", lambda: model.count_params("gpt"), TypeError, "module"),
    ("init_gpt2_weights init_std", lambda: model.init_gpt2_weights(gpt(), -1.0, 2), ValueError, "init_std"),
    ("bridge_config dict", lambda: model.bridge_config({}), TypeError, "cfg"),
    # ---------------------------------------------------------------- encoder-decoder
    ("EncDecConfig n_enc_layers 0", lambda: encdec.EncDecConfig(n_enc_layers=0), ValueError, r"EncDecConfig\.n_enc_layers"),
    ("EncDecConfig ln_eps -1", lambda: encdec.EncDecConfig(ln_eps=-1.0), ValueError, r"EncDecConfig\.ln_eps"),
    ("EncDecConfig n_layers by hand", lambda: encdec.EncDecConfig(n_layers=3), TypeError, "n_layers"),
    ("EncoderDecoderGPT from GPTConfig", lambda: encdec.EncoderDecoderGPT(CFG), TypeError, "EncDecConfig"),
    ("encdec tokens float", lambda: ED(T.float()), TypeError, "tokens"),
    ("encdec return_type", lambda: ED(T, return_type="resid"), ValueError, "return_type"),
    ("encdec targets all -100", lambda: ED(T, return_type="loss", targets=targets()), ValueError, "targets"),
    ("encdec kv_cache of a GPT", lambda: ED(T, kv_cache=GPT.new_kv_cache()), ValueError, "kv_cache"),
    ("cross-attention misaligned", lambda: ED.decoder[0].cross_attn(torch.zeros(1, 3, 8), torch.zeros(1, 2, 8)), ValueError, "key_input"),
    ("planning_loss_fn lam < 0", lambda: encdec.planning_loss_fn(-1.0, 2), ValueError, "lam"),
    ("planning_loss_fn lam NaN", lambda: encdec.planning_loss_fn(NAN, 2), ValueError, "lam"),
    ("planning_loss_fn n str", lambda: encdec.planning_loss_fn(1.0, "2"), TypeError, "horizon n"),
    ("planning_loss_fn kind", lambda: encdec.planning_loss_fn(1.0, 2, "l2"), ValueError, "kind"),
    ("planning_loss_fn scored_only int", lambda: encdec.planning_loss_fn(1.0, 2, scored_only=1), TypeError, "scored_only"),
    ("build_variant name", lambda: encdec.build_variant("gpt2", ED_CFG), ValueError, "name"),
    ("build_variant cfg", lambda: encdec.build_variant("gpt", CFG), TypeError, "cfg"),
    ("gpt_same_layers cfg", lambda: encdec.gpt_same_layers(CFG), TypeError, "EncDecConfig"),
    # ---------------------------------------------------------------- training
    ("TrainConfig grad_clip -1 (ascent)", lambda: training.TrainConfig(grad_clip=-1.0), ValueError, r"TrainConfig\.grad_clip"),
    ("TrainConfig grad_clip 0 (frozen)", lambda: training.TrainConfig(grad_clip=0), ValueError, r"TrainConfig\.grad_clip"),
    ("TrainConfig lr NaN", lambda: training.TrainConfig(lr=NAN), ValueError, r"TrainConfig\.lr"),
    ("TrainConfig weight_decay -1", lambda: training.TrainConfig(weight_decay=-1.0), ValueError, r"TrainConfig\.weight_decay"),
    ("TrainConfig warmup > max_steps", lambda: training.TrainConfig(max_steps=10, warmup_steps=11), ValueError, r"TrainConfig\.warmup_steps"),
    ("TrainConfig max_steps bool", lambda: training.TrainConfig(max_steps=True), TypeError, r"TrainConfig\.max_steps"),
    ("TrainConfig betas", lambda: training.TrainConfig(betas=(0.9, 1.5)), ValueError, r"TrainConfig\.betas"),
    ("lr_at float step", lambda: training.lr_at(1.5, TCFG), TypeError, "step"),
    ("lr_at cfg dict", lambda: training.lr_at(1, {}), TypeError, "cfg"),
    ("make_reproducible threads 0", lambda: training.make_reproducible(0, threads=0), ValueError, "threads"),
    ("make_reproducible threads str", lambda: training.make_reproducible(0, threads="2"), TypeError, "threads"),
    ("pick_device int", lambda: training.pick_device(3), TypeError, "prefer"),
    ("pick_device typo", lambda: training.pick_device("gpu0"), ValueError, "prefer"),
    ("make_optimizer str", lambda: training.make_optimizer("m", TCFG), TypeError, "model"),
    ("train str model", lambda: training.train("m", lambda s: T, TCFG), TypeError, "model"),
    ("train batch_fn", lambda: training.train(gpt(), None, TCFG), TypeError, "batch_fn"),
    ("train loss_fn returns float", lambda: training.train(gpt(), lambda s: T, TCFG, loss_fn=lambda m, b: 1.0), TypeError, "loss_fn"),
    ("random_windows batch 0", lambda: training.random_windows(DATA, 0, 5, torch.Generator()), ValueError, "batch_size"),
    ("random_windows generator None", lambda: training.random_windows(DATA, 2, 5, None), TypeError, "generator"),
    ("random_windows float data", lambda: training.random_windows(DATA.float(), 2, 5, torch.Generator()), TypeError, "data"),
    ("lm_batch_fn seq_len str", lambda: training.lm_batch_fn(DATA, 2, "5"), TypeError, "seq_len"),
    ("evaluate_lm_loss seq_len 1", lambda: training.evaluate_lm_loss(GPT, DATA, 1), ValueError, "seq_len"),
    ("evaluate_lm_loss batch 0", lambda: training.evaluate_lm_loss(GPT, DATA, 6, batch_size=0), ValueError, "batch_size"),
    ("evaluate_lm_loss ids >= d_vocab", lambda: training.evaluate_lm_loss(GPT, DATA + V, 6), ValueError, "data"),
    ("nats_per_char NaN", lambda: training.nats_per_char(NAN, 1, 1), ValueError, "nats_per_token"),
    ("nats_per_char n_chars 0", lambda: training.nats_per_char(1.0, 1, 0), ValueError, "n_chars"),
    ("save_checkpoint path int", lambda: training.save_checkpoint(GPT, 3), TypeError, "path"),
    ("read_checkpoint path None", lambda: training.read_checkpoint(None), TypeError, "path"),
    ("train optimizer of another model (weights never move)", lambda: train_with_optimizer_of(lambda m: gpt().parameters()),
     ValueError, "optimizer's parameters are not this model's.*re-run the cell that builds the optimizer"),
    ("train optimizer missing some parameters", lambda: train_with_optimizer_of(lambda m: list(m.parameters())[:2]),
     ValueError, "optimizer is missing .* trainable parameters"),
    # ---------------------------------------------------------------- sampling
    ("apply_temperature 0", lambda: sampling.apply_temperature(LOGITS, 0), ValueError, "temperature"),
    ("apply_temperature str", lambda: sampling.apply_temperature(LOGITS, "1"), TypeError, "temperature"),
    ("logits int", lambda: sampling.apply_temperature(LOGITS.long(), 1.0), TypeError, "logits"),
    ("logits 3-D", lambda: sampling.top_k_filter(LOGITS3, 2), ValueError, "logits"),
    ("logits NaN (argmax would pick it)", lambda: sampling.sample_next_token(torch.tensor([[0.0, NAN]]), 0), ValueError, "logits"),
    ("logits row all -inf", lambda: sampling.sample_next_token(torch.full((1, 3), -math.inf)), ValueError, "logits"),
    ("top_k 0", lambda: sampling.top_k_filter(LOGITS, 0), ValueError, "k"),
    ("top_k float", lambda: sampling.top_k_filter(LOGITS, 2.5), TypeError, "k"),
    ("top_k bool", lambda: sampling.sample_next_token(LOGITS, top_k=True), TypeError, "top_k"),
    ("top_p 0", lambda: sampling.top_p_filter(LOGITS, 0.0), ValueError, "p"),
    ("top_p str", lambda: sampling.sample_next_token(LOGITS, top_p="0.9"), TypeError, "top_p"),
    ("temperature < 0", lambda: sampling.sample_next_token(LOGITS, -1.0), ValueError, "temperature"),
    ("generator str", lambda: sampling.sample_next_token(LOGITS, generator="g"), TypeError, "generator"),
    ("generate max_new_tokens -1", lambda: sampling.generate(GPT, T, -1), ValueError, "max_new_tokens"),
    ("generate max_new_tokens str", lambda: sampling.generate(GPT, T, "3"), TypeError, "max_new_tokens"),
    ("generate tokens out of range", lambda: sampling.generate(GPT, T + V, 2), ValueError, "tokens"),
    ("generate tokens float", lambda: sampling.generate(GPT, T.float(), 2), TypeError, "tokens"),
    ("generate top_k 0", lambda: sampling.generate(GPT, T, 2, top_k=0), ValueError, "top_k"),
    ("generate stop_token = d_vocab", lambda: sampling.generate(GPT, T, 2, stop_token=V), ValueError, "stop_token"),
    ("generate use_kv_cache str", lambda: sampling.generate(GPT, T, 2, use_kv_cache="no"), TypeError, "use_kv_cache"),
    ("generate model str", lambda: sampling.generate("gpt", T, 2), TypeError, "model"),
    # ---------------------------------------------------------------- BPE
    ("train special_tokens str", lambda: bpe.BPETokenizer.train("abc abc", 260, special_tokens="<eos>"), TypeError, "special_tokens"),
    ("train empty special", lambda: bpe.BPETokenizer.train("abc abc", 260, special_tokens=[""]), ValueError, "special_tokens"),
    ("train special int", lambda: bpe.BPETokenizer.train("abc abc", 260, special_tokens=[1]), TypeError, "special_tokens"),
    ("train duplicate specials", lambda: bpe.BPETokenizer.train("abc", 260, special_tokens=["<a>", "<a>"]), ValueError, "special tokens"),
    ("train vocab_size str", lambda: bpe.BPETokenizer.train("abc", "300"), TypeError, "vocab_size"),
    ("train vocab_size small", lambda: bpe.BPETokenizer.train("abc", 100), ValueError, "vocab_size"),
    ("train text bytes", lambda: bpe.BPETokenizer.train(b"abc", 300), TypeError, "text"),
    ("train text empty", lambda: bpe.BPETokenizer.train("", 300), ValueError, "text"),
    ("train verbose int", lambda: bpe.BPETokenizer.train("abc", 260, verbose=1), TypeError, "verbose"),
    ("encode int", lambda: TOK.encode(3), TypeError, "text"),
    ("encode lone surrogate", lambda: TOK.encode("ok \ud800"), ValueError, "text"),
    ("encode_ordinary None", lambda: TOK.encode_ordinary(None), TypeError, "text"),
    ("encode allowed_special typo", lambda: TOK.encode("hi", allowed_special="some"), ValueError, "allowed_special"),
    ("encode allowed_special list", lambda: TOK.encode("hi", allowed_special=["<|endoftext|>"]), TypeError, "allowed_special"),
    ("encode unknown special", lambda: TOK.encode("hi", allowed_special={"<|nope|>"}), ValueError, "special"),
    ("decode float id", lambda: TOK.decode([1.5]), TypeError, "ids"),
    ("decode unknown id", lambda: TOK.decode([99999]), ValueError, "token id"),
    ("decode str", lambda: TOK.decode("abc"), TypeError, "ids"),
    ("decode float tensor", lambda: TOK.decode(torch.tensor([1.0])), TypeError, "ids"),
    ("decode 2-D tensor", lambda: TOK.decode(torch.zeros(1, 2, dtype=torch.long)), ValueError, "ids"),
    ("token_bytes -1", lambda: TOK.token_bytes(-1), ValueError, "i"),
    ("token_to_id int", lambda: TOK.token_to_id(3), TypeError, "token"),
    ("token_to_id unknown", lambda: TOK.token_to_id("<|nope|>"), KeyError, "nope"),
    ("merge_pair ids str", lambda: bpe.merge_pair("abc", (1, 2), 3), TypeError, "ids"),
    ("merge_pair pair of one", lambda: bpe.merge_pair([1, 2], (1,), 3), TypeError, "pair"),
    ("merge_pair new_id -1", lambda: bpe.merge_pair([1, 2], (1, 2), -1), ValueError, "new_id"),
    ("get_pair_counts str id", lambda: bpe.get_pair_counts([1, "a"]), TypeError, "ids"),
    ("tokenizer special id = a merge id", lambda: bpe.BPETokenizer({i: bytes([i]) for i in range(256)}, {}, {"<s>": 5}), ValueError, "special_tokens"),
    ("save path int", lambda: TOK.save(3), TypeError, "path"),
    ("load path int", lambda: bpe.BPETokenizer.load(3), TypeError, "path"),
    # ---------------------------------------------------------------- future loss
    ("future_loss int encoder_out", lambda: future_loss.future_loss(E.long(), E, 2), TypeError, "encoder_out"),
    ("future_loss kind", lambda: future_loss.future_loss(E, E, 2, "l2"), ValueError, "kind"),
    ("future_loss eps 0", lambda: future_loss.future_loss(E, E, 2, eps=0.0), ValueError, "eps"),
    ("future_loss positions float", lambda: future_loss.future_loss(E, E, 2, positions=torch.ones(2, 6)), TypeError, "positions"),
    ("future_loss positions shape", lambda: future_loss.future_loss(E, E, 2, positions=torch.ones(2, 5, dtype=torch.bool)), ValueError, "positions"),
    ("future_aggregate n 0", lambda: future_loss.future_aggregate(E, 0), ValueError, "horizon n"),
    ("future_aggregate n >= pos", lambda: future_loss.future_aggregate(E, 6), ValueError, "horizon n"),
    ("disaffinity shapes", lambda: future_loss.disaffinity(E, E[:, :3]), ValueError, "same shape"),
    ("disaffinity kind", lambda: future_loss.disaffinity(E, E, "dot"), ValueError, "kind"),
    ("LearnableNormFutureLoss d_model str", lambda: future_loss.LearnableNormFutureLoss("8"), TypeError, "d_model"),
    ("LearnableNormFutureLoss eps", lambda: future_loss.LearnableNormFutureLoss(8, eps=-1.0), ValueError, "eps"),
    # ---------------------------------------------------------------- interpretability
    ("logit_lens float tokens", lambda: interp.logit_lens(GPT, T.float()), TypeError, "tokens"),
    ("logit_lens one position", lambda: interp.logit_lens(GPT, T[:, :1]), ValueError, "2 positions"),
    ("logit_lens model str", lambda: interp.logit_lens("gpt", T), TypeError, "model"),
    ("head_ablation out of range", lambda: interp.head_ablation_losses(GPT, T + V), ValueError, "tokens"),
    ("mean_ablate head 5", lambda: interp.mean_ablate_head_hook(torch.zeros(2, 4), 5), ValueError, "head"),
    ("mean_ablate NaN z", lambda: interp.mean_ablate_head_hook(torch.full((2, 4), NAN), 0), ValueError, "layer_mean_z"),
    ("attention_to_offset offset", lambda: interp.attention_to_offset(torch.zeros(1, 2, 3, 3), 3), ValueError, "offset"),
    ("attention_to_offset int pattern", lambda: interp.attention_to_offset(torch.zeros(1, 2, 3, 3, dtype=torch.long)), TypeError, "pattern"),
    # ---------------------------------------------------------------- looped
    ("LoopedGPT n_loops 0", lambda: LoopedGPT(CFG, 0), ValueError, "n_loops"),
    ("LoopedGPT n_loops float", lambda: LoopedGPT(CFG, 2.0), TypeError, "n_loops"),
    # ---------------------------------------------------------------- path-star
    ("PathStarSpec degree 1", lambda: path_star.PathStarSpec(degree=1), ValueError, "degree"),
    ("PathStarSpec degree str", lambda: path_star.PathStarSpec(degree="2"), TypeError, "degree"),
    ("sample_path_star batch 0", lambda: path_star.sample_path_star(PS, 0, torch.Generator()), ValueError, "batch_size"),
    ("sample_path_star generator", lambda: path_star.sample_path_star(PS, 2, None), TypeError, "generator"),
    ("sample_path_star reverse int", lambda: path_star.sample_path_star(PS, 2, torch.Generator(), reverse=1), TypeError, "reverse"),
    ("path_accuracy float", lambda: path_star.path_accuracy(PS_BATCH.answers.float(), PS_BATCH), TypeError, "predicted"),
    ("path_accuracy shape", lambda: path_star.path_accuracy(PS_BATCH.answers[:, :2], PS_BATCH), ValueError, "predicted"),
    ("greedy_answers batch", lambda: path_star.greedy_answers(GPT, T), TypeError, "batch"),
    ("teacher_forced_loss batch", lambda: path_star.teacher_forced_loss(GPT, T), TypeError, "batch"),
    # ---------------------------------------------------------------- pointer chasing
    ("PointerSpec n_nodes 1", lambda: pointer_task.PointerSpec(n_nodes=1), ValueError, "n_nodes"),
    ("PointerSpec n_nodes float", lambda: pointer_task.PointerSpec(n_nodes=6.0), TypeError, "n_nodes"),
    ("hop_id 0", lambda: PT.hop_id(0), ValueError, "hops"),
    ("filler_id typo", lambda: PT.filler_id("pauses"), ValueError, "filler"),
    ("seq_len decoys -1", lambda: PT.seq_len("pause", -1), ValueError, "decoys"),
    ("sample batch 0", lambda: pointer_task.sample_pointer_batch(PT, 0, torch.Generator()), ValueError, "batch_size"),
    ("sample hops 9", lambda: pointer_task.sample_pointer_batch(PT, 2, torch.Generator(), hops=9), ValueError, "hops"),
    ("sample decoys without filler", lambda: pointer_task.sample_pointer_batch(PT, 2, torch.Generator(), "none", decoys=1), ValueError, "decoys"),
    ("sample generator None", lambda: pointer_task.sample_pointer_batch(PT, 2, None), TypeError, "generator"),
    ("answer_accuracy NaN logits", lambda: pointer_task.answer_accuracy(torch.full((4, PT_BATCH.tokens.shape[1], PT.vocab_size), NAN), PT_BATCH), ValueError, "logits"),
    ("answer_logits shape", lambda: pointer_task.answer_logits(LOGITS3, PT_BATCH), ValueError, "logits"),
    ("select empty", lambda: PT_BATCH.select([]), ValueError, "rows"),
    ("select out of range", lambda: PT_BATCH.select([99]), ValueError, "rows"),
    ("select str", lambda: PT_BATCH.select("0"), TypeError, "rows"),
    ("parse_method dense-0", lambda: pointer_task.parse_method("dense-0"), ValueError, "method"),
    ("parse_method int", lambda: pointer_task.parse_method(3), TypeError, "method"),
    ("pointer_model_config heads", lambda: pointer_task.pointer_model_config(PT, d_model=6, n_heads=4), ValueError, "n_heads"),
    ("evaluate_pointer n_questions 0", lambda: pointer_runs.evaluate_pointer(GPT, PT, "none", n_questions=0), ValueError, "n_questions"),
    ("train_pointer_model steps 0", lambda: pointer_runs.train_pointer_model("none", 0, steps=0), ValueError, "steps"),
    ("train_pointer_model lr NaN", lambda: pointer_runs.train_pointer_model("none", 0, lr=NAN), ValueError, "lr"),
    # ---------------------------------------------------------------- fillers
    ("interleave float windows", lambda: fillers.interleave_fillers(T.float(), 2, 1), TypeError, "windows"),
    ("interleave every 0", lambda: fillers.interleave_fillers(T, 0, 1), ValueError, "every"),
    ("interleave filler_id -1", lambda: fillers.interleave_fillers(T, 2, -1), ValueError, "filler_id"),
    ("masked_lm_loss nothing scored", lambda: fillers.masked_lm_loss(LOGITS3, targets()), ValueError, "targets"),
    ("masked_lm_loss float targets", lambda: fillers.masked_lm_loss(LOGITS3, targets(1, torch.float)), TypeError, "targets"),
    ("masked_lm_loss target -5", lambda: fillers.masked_lm_loss(LOGITS3, targets(-5)), ValueError, "targets"),
    ("masked_lm_loss reduction", lambda: fillers.masked_lm_loss(LOGITS3, targets(1), reduction="avg"), ValueError, "reduction"),
    ("masked_lm_loss masked id", lambda: fillers.masked_lm_loss(LOGITS3, targets(1), masked_ids=[V]), ValueError, "masked_ids"),
    ("masked_lm_loss masked str", lambda: fillers.masked_lm_loss(LOGITS3, targets(1), masked_ids="5"), TypeError, "masked_ids"),
    ("filler_logits kind", lambda: text_runs.filler_logits(GPT, T, "noise", 1), ValueError, "kind"),
    ("validation_windows n_real 1", lambda: fillers.validation_windows(DATA, 1, 5), ValueError, "n_real"),
    ("validation_windows max 0", lambda: fillers.validation_windows(DATA, 4, 0), ValueError, "max_windows"),
    ("evaluate_text_nll batch 0", lambda: text_runs.evaluate_text_nll(GPT, DATA, 6, None, 2, 1, batch_size=0), ValueError, "batch_size"),
    # ---------------------------------------------------------------- thoughts and dense tokens
    ("evaluate_nll score_mask all False (0 nats)", lambda: thought_training.evaluate_nll(GPT, T, LENS, TH, PAD, score_mask=torch.zeros(2, 6, dtype=torch.bool)),
     ValueError, "nothing to score: score_mask"),
    ("evaluate_nll score_mask on padding", lambda: thought_training.evaluate_nll(GPT, T, torch.tensor([6, 3]), TH, PAD, score_mask=torch.ones(2, 6, dtype=torch.bool).index_fill(1, torch.tensor([0]), False)),
     ValueError, "score_mask must select only real tokens"),
    ("targets_accuracy all -100 (a perfect 1.0)", lambda: dense.targets_accuracy(LOGITS3, targets()), ValueError, "nothing to score: every entry of targets"),
    ("targets_accuracy target -5", lambda: dense.targets_accuracy(LOGITS3, targets(-5)), ValueError, r"targets must hold ids in \[0, 20\) \(or -100\)"),
    ("start_batch thought_id = pad_id", lambda: thoughts.start_batch(GPT, T, LENS, 5, 5), ValueError, "thought_id and pad_id must differ"),
    ("run_episode thought_id = pad_id", lambda: thoughts.run_episode(GPT, T, LENS, 5, 5, 1), ValueError, "thought_id and pad_id must differ"),
    ("fast_forward thought_id = pad_id", lambda: thoughts.fast_forward(GPT, T, LENS, 5, 5), ValueError, "thought_id and pad_id must differ"),
    ("insertion_round window 0 (every score 0)", lambda: thoughts.insertion_round(GPT, START, window=0), ValueError, r"window must be a positive int or None"),
    ("run_episode window 0", lambda: thoughts.run_episode(GPT, T, LENS, TH, PAD, 1, window=0), ValueError, r"window must be a positive int or None"),
    ("insertion_scores window 0", lambda: thoughts.insertion_scores(START.stats.text_lp, START.stats.text_lp, T, LENS, torch.tensor([-1, -1]), T * 0 + torch.arange(6), TH, window=0),
     ValueError, r"window must be a positive int or None"),
    ("run_episode window float", lambda: thoughts.run_episode(GPT, T, LENS, TH, PAD, 1, window=2.0), TypeError, "window"),
    ("run_episode keep_fraction 1.5", lambda: thoughts.run_episode(GPT, T, LENS, TH, PAD, 1, keep_fraction=1.5), ValueError, "keep_fraction"),
    ("target_log_likelihood target -5 (read as token 0)", lambda: dense.target_log_likelihood(LOGITS3, targets(-5)), ValueError, r"targets must hold ids in \[0, 20\) \(or -100\)"),
    ("target_log_likelihood target = d_vocab", lambda: dense.target_log_likelihood(LOGITS3, targets(V)), ValueError, r"targets must hold ids in \[0, 20\)"),
    ("target_log_likelihood int logits", lambda: dense.target_log_likelihood(LOGITS3.long(), targets(1)), TypeError, "logits"),
    ("deletion_scores target -7", lambda: dense.deletion_scores(GPT, T, targets(-7), TH, PAD), ValueError, r"targets must hold ids in \[0, 20\) \(or -100\)"),
    ("deletion_scores target = d_vocab", lambda: dense.deletion_scores(GPT, T, targets(V), TH, PAD), ValueError, r"targets must hold ids in \[0, 20\)"),
    ("deletion_scores targets shape", lambda: dense.deletion_scores(GPT, T, targets(1)[:, :3], TH, PAD), ValueError, "targets"),
    ("generate_with_thoughts thought_id = d_vocab", lambda: thought_training.generate_with_thoughts(GPT, T[:, :3], 1, V), ValueError,
     r"thought_id = 20 is outside the vocabulary \[0, 20\)"),
    ("generate_with_thoughts thought_id -1", lambda: thought_training.generate_with_thoughts(GPT, T[:, :3], 1, -1), ValueError,
     r"thought_id = -1 is outside the vocabulary \[0, 20\)"),
    ("generate_with_thoughts max_rank str", lambda: thought_training.generate_with_thoughts(GPT, T[:, :3], 1, TH, "0"), TypeError, "max_rank"),
    # ---------------------------------------------------------------- references and statistics
    ("ngram order 3", lambda: references.ngram_nats_per_token(DATA, T, V, 3, 1.0), ValueError, "order"),
    ("ngram k NaN", lambda: references.ngram_nats_per_token(DATA, T, V, 2, NAN), ValueError, "k"),
    ("text_references ks str", lambda: references.text_references(DATA, T, T, V, ks="1"), TypeError, "ks"),
    ("pointer_chance str", lambda: references.pointer_chance("6"), TypeError, "n_nodes"),
    ("verdict NaN (no silent 'no effect')", lambda: stats.verdict([1.0, NAN], [1.0, 2.0], True, 0.0), ValueError, "baseline"),
    ("verdict flag str", lambda: stats.verdict([1.0, 2.0], [3.0, 4.0], "yes", 0.0), TypeError, "higher_is_better"),
    ("verdict min_effect -1", lambda: stats.verdict([1.0, 2.0], [3.0, 4.0], True, -1.0), ValueError, "min_effect"),
    ("holm p > 1", lambda: stats.holm([2.0]), ValueError, "p_values"),
    ("rank_test str", lambda: stats.rank_test_p("ab", [1.0], True), TypeError, "baseline"),
    ("compare_table baseline", lambda: stats.compare_table({"a": [1.0, 2.0]}, "b", True, 0.0), ValueError, "baseline"),
    # ---------------------------------------------------------------- plotting
    ("plot_loss_curves empty", lambda: plotting.plot_loss_curves({}), ValueError, "histories"),
    ("plot_loss_curves list", lambda: plotting.plot_loss_curves([1]), TypeError, "histories"),
    ("plot_loss_curves not a History", lambda: plotting.plot_loss_curves({"a": 3}), TypeError, "histories"),
    ("plot_loss_curves ax str", lambda: plotting.plot_loss_curves({"a": training.History()}, ax="ax"), TypeError, "ax"),
    ("plot_attention_pattern not square", lambda: plotting.plot_attention_pattern(torch.zeros(2, 3), ["a", "b"]), ValueError, "pattern"),
    ("plot_attention_pattern tokens str", lambda: plotting.plot_attention_pattern(torch.zeros(2, 2), "ab"), TypeError, "tokens"),
    ("plot_heatmap 1-D", lambda: plotting.plot_heatmap(torch.zeros(3), ["a"], ["b"]), ValueError, "values"),
    ("plot_heatmap strings", lambda: plotting.plot_heatmap("abc", ["a"], ["b"]), TypeError, "values"),
    ("plot_heatmap vmin str", lambda: plotting.plot_heatmap(torch.zeros(1, 1), ["a"], ["b"], vmin="0"), TypeError, "vmin"),
    ("plot_bars empty values", lambda: plotting.plot_bars_with_spread({"a": []}), ValueError, "results"),
    ("plot_bars NaN", lambda: plotting.plot_bars_with_spread({"a": [1.0, NAN]}), ValueError, "results"),
    ("plot_bars list", lambda: plotting.plot_bars_with_spread([1.0]), TypeError, "results"),
    ("mean_and_spread empty", lambda: plotting.mean_and_spread([]), ValueError, "values"),
    ("mean_and_spread NaN", lambda: plotting.mean_and_spread([1.0, NAN]), ValueError, "values"),
    ("plot_curves length", lambda: plotting.plot_curves_with_spread([1, 2, 3], {"a": [[1.0, 2.0]]}), ValueError, "'a'"),
    ("plot_highlighted str", lambda: token_plot.plot_highlighted_tokens("abc"), TypeError, "pieces"),
    ("plot_highlighted empty", lambda: token_plot.plot_highlighted_tokens([]), ValueError, "pieces"),
    ("plot_highlighted max_chars", lambda: token_plot.plot_highlighted_tokens(["a"], max_chars=4), ValueError, "max_chars"),
    ("plot_highlighted fontsize str", lambda: token_plot.plot_highlighted_tokens(["a"], fontsize="9"), TypeError, "fontsize"),
    ("plot_highlighted colours", lambda: token_plot.plot_highlighted_tokens(["a", "b"], colors=["red"]), ValueError, "colours"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call, error, match):
    GPT.train()
    ED.train()
    with pytest.raises(error, match=match):
        call()
    # Failing calls leave the shared models exactly as they were.
    assert GPT.training and all(m.training for m in GPT.modules())
    assert ED.training and all(m.training for m in ED.modules())
    plt.close("all")


def test_the_suite_covers_every_module_it_claims():
    covered = {c[1].__code__.co_names for c in CASES}
    names = set().union(*covered)
    for module in ("model", "encdec", "training", "sampling", "bpe", "future_loss", "interp", "path_star",
                   "pointer_task", "fillers", "references", "stats", "plotting", "token_plot", "thoughts",
                   "thought_training", "dense"):
        assert module in names or any(module in n for n in names), module
    assert len(CASES) >= 200


# ------------------------------------------------------------------------ state after a failure
def _failing_model(n_ctx: int = 4):
    """A tiny GPT whose context is too short for the calls below: they fail inside the model,
    after the callee has switched it to eval mode."""
    return gpt(model.GPTConfig(d_vocab=V, n_ctx=n_ctx, d_model=8, n_layers=1, n_heads=2, d_head=4, d_mlp=16))


@pytest.mark.parametrize("start_in_training", [True, False])
@pytest.mark.parametrize(
    "call",
    [
        lambda m: training.evaluate_lm_loss(m, DATA, 8),
        lambda m: text_runs.evaluate_text_nll(m, DATA, 8, None, 2, 1),
        lambda m: path_star.teacher_forced_accuracy(m, PS_BATCH),
        lambda m: path_star.greedy_answers(m, PS_BATCH),
        lambda m: pointer_runs.evaluate_pointer(m, PT, "none", n_questions=4),
    ],
    ids=["evaluate_lm_loss", "evaluate_text_nll", "teacher_forced_accuracy", "greedy_answers", "evaluate_pointer"],
)
def test_state_model_mode_restored_when_the_call_fails_inside(call, start_in_training):
    m = _failing_model()
    m.train(start_in_training)
    with pytest.raises((ValueError, TypeError)):
        call(m)
    assert all(x.training == start_in_training for x in m.modules())


def test_state_generate_restores_the_mode_of_a_model_that_fails_inside():
    looped = LoopedGPT(CFG, 2)  # no KV cache: generate's first cached step fails inside
    looped.train()
    with pytest.raises(ValueError, match="KV cache"):
        sampling.generate(looped, T[:, :2], 2)
    assert looped.training
    looped.eval()
    assert sampling.generate(looped, T[:, :2], 2, use_kv_cache=False).shape == (2, 4)
    assert not looped.training


def test_state_train_restores_the_mode_when_it_fails():
    m = gpt()
    m.eval()
    with pytest.raises(FloatingPointError):
        training.train(m, lambda s: T, TCFG, loss_fn=lambda mm, b: torch.tensor(NAN, requires_grad=True))
    assert not any(x.training for x in m.modules())
    training.train(m, lambda s: T, TCFG)  # success: evaluated afterwards, in eval mode (as before)
    assert not m.training


def test_state_kv_cache_untouched_by_a_failing_forward():
    m = gpt()
    cache = m.new_kv_cache()
    m(T[:, :3], kv_cache=cache)
    before = [(k.clone(), v.clone()) for k, v in cache.layers]
    for bad in (dict(tokens=T[:, 3:] + V), dict(tokens=T[:, 3:], return_type="nope"),
                dict(tokens=T[:1, 3:]), dict(tokens=torch.zeros(2, CTX, dtype=torch.long))):
        with pytest.raises(ValueError):
            m(kv_cache=cache, **bad)
        assert [(torch.equal(k, a), torch.equal(v, b)) for (k, v), (a, b) in zip(cache.layers, before)] == [(True, True)] * 2
    short = model.KVCache(1)  # too few layers: refused before layer 0 is written
    with pytest.raises(ValueError, match="kv_cache has 1 layers"):
        m(T, kv_cache=short)
    assert short.layers == [None]
    # A failure in the middle of the forward (a hook that raises) rolls the written layers back.
    with pytest.raises(RuntimeError, match="hook failed"):
        m.run_with_hooks(T[:, 3:], kv_cache=cache, fwd_hooks=[("blocks.1.hook_resid_pre", _raise)])
    assert all(torch.equal(k, a) for (k, _), (a, _) in zip(cache.layers, before))


def _raise(x, hook):
    raise RuntimeError("hook failed")


def test_state_train_with_another_models_optimizer_moves_nothing():
    m = gpt()
    m.eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    stale = training.make_optimizer(gpt(), TCFG)  # the model cell was re-run, the optimizer cell was not
    with pytest.raises(ValueError, match="optimizer's parameters are not this model's"):
        training.train(m, lambda s: T, TCFG, optimizer=stale)
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items()) and not m.training
    assert all(not state for state in stale.state.values())  # the optimizer took no step either
    extra = torch.nn.Linear(2, 2)  # a superset (a loss module trained alongside, as notebook 07 does) is fine
    training.train(m, lambda s: T, TCFG, optimizer=torch.optim.AdamW([*m.parameters(), *extra.parameters()]))
    assert not torch.equal(m.state_dict()["embed.W_E"], before["embed.W_E"])


def test_state_episode_checks_everything_before_drawing():
    # keep_fraction used to be checked by keep_best after round 1, once the "random" rule had drawn.
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    with pytest.raises(ValueError, match="keep_fraction"):
        thoughts.run_episode(GPT, T, LENS, TH, PAD, 2, rule="random", keep_fraction=1.5, generator=gen)
    assert torch.equal(gen.get_state(), state)


def test_state_train_dense_thinker_refuses_a_bad_rule_before_training():
    from lib.methods.dense_thoughts import train_dense_thinker

    m = gpt()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rows, lengths = thoughts.plain_batch(torch.randint(0, TH, (8, 6), generator=torch.Generator().manual_seed(0)))
    wanted = torch.ones_like(rows, dtype=torch.bool)
    for kwargs, match in [(dict(rule="best"), "rule"), (dict(pad_id=TH), "dense_id and pad_id must differ"),
                          (dict(first_gap=0), "first_gap")]:
        args = dict(steps=2, batch_size=4, dense_id=TH, pad_id=PAD) | kwargs
        with pytest.raises(ValueError, match=match):  # the rule was only read at the half-way switch
            train_dense_thinker(m, rows, lengths, wanted, **args)
        assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_one_train_dense_thinker_call_checks_each_tensor_once(monkeypatch):
    """Validate once at the boundary: the public call checks its tensors, the helpers it calls
    trust them. Before, one small call ran check_padded_rows 17 times and check_tensor 18 times
    through the thought modules, one episode chunk of rows being checked 7 times."""
    import sys

    from lib.core import checks
    from lib.methods.dense_thoughts import train_dense_thinker

    m = gpt(model.GPTConfig(d_vocab=11, n_ctx=12, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))
    rows, lengths = thoughts.plain_batch(torch.randint(0, 8, (16, 8), generator=torch.Generator().manual_seed(0)))
    wanted = torch.ones_like(rows, dtype=torch.bool)
    seen: dict[int, list] = {}  # id -> [tensor (kept alive, so ids are not reused), times checked]
    calls = {"check_padded_rows": 0, "check_tensor": 0, "check_token_ids": 0}

    def counting(name, check):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            for x in args[:2]:  # (tokens, lengths) or (tensor, name)
                if isinstance(x, torch.Tensor):
                    seen.setdefault(id(x), [x, 0])[1] += 1
            return check(*args, **kwargs)
        return wrapper

    patched = []
    for name in calls:
        original = getattr(checks, name)
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("lib.") and module is not checks and getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counting(name, original))
                patched.append(module.__name__)
    assert {"lib.methods.thoughts", "lib.methods.thought_training", "lib.methods.dense_thoughts"} <= set(patched)
    out = train_dense_thinker(m, rows, lengths, wanted, 4, 4, 9, 10, n_rounds=2)
    assert [r["round"] for r in out["rounds"]] == [1, 2]  # the episodes did run
    assert max(n for _, n in seen.values()) == 1
    assert seen[id(rows)][1] == 1 and seen[id(lengths)][1] == 1
    assert calls == {"check_padded_rows": 1, "check_tensor": 0, "check_token_ids": 0}


def test_state_encdec_cache_untouched_by_a_failing_forward():
    cache = ED.new_kv_cache()
    ED(T[:, :3], kv_cache=cache)
    lengths = [kv[0].shape[2] for kv in cache.layers]
    with pytest.raises(ValueError):
        ED(T[:, 3:] + V, kv_cache=cache)
    with pytest.raises(RuntimeError):
        ED.run_with_hooks(T[:, 3:], kv_cache=cache, fwd_hooks=[("decoder.0.hook_resid_pre", _raise)])
    assert [kv[0].shape[2] for kv in cache.layers] == lengths


# ------------------------------------------------------------------------ files
def test_checkpoint_errors_name_the_file(tmp_path):
    from safetensors.torch import save_file

    missing = tmp_path / "missing.safetensors"
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        training.read_checkpoint(missing)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.safetensors"):
        training.load_gpt(garbage)
    bad_header = tmp_path / "bad_header.safetensors"
    save_file({"x": torch.zeros(1)}, str(bad_header), metadata={"config": "{not json"})
    with pytest.raises(ValueError, match="bad_header.safetensors.*config"):
        training.read_checkpoint(bad_header)
    list_header = tmp_path / "list_header.safetensors"
    save_file({"x": torch.zeros(1)}, str(list_header), metadata={"config": "[1, 2]"})
    with pytest.raises(ValueError, match="list_header.safetensors.*JSON object"):
        training.read_checkpoint(list_header)
    encdec_ckpt = training.save_checkpoint(ED, tmp_path / "encdec.safetensors")
    with pytest.raises(ValueError, match="EncoderDecoderGPT.*not a GPT"):
        training.load_gpt(encdec_ckpt)


def test_save_checkpoint_failure_leaves_the_old_file(tmp_path):
    path = training.save_checkpoint(GPT, tmp_path / "m.safetensors", metadata={"v": 1})
    before = path.read_bytes()
    with pytest.raises(ValueError, match="metadata"):
        training.save_checkpoint(GPT, path, metadata={"v": object()})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_checkpoint_with_a_flipped_byte_is_refused(tmp_path):
    path = training.save_checkpoint(GPT, tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")  # safetensors: 8-byte length, JSON header, tensor bytes
    data[8 + header_len + (len(data) - 8 - header_len) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    for read in (training.read_checkpoint, training.load_gpt):
        with pytest.raises(ValueError, match="m.safetensors is a corrupt or edited checkpoint"):
            read(path)


def test_checkpoint_without_a_digest_still_loads(tmp_path):
    from safetensors.torch import save_file

    # Written as save_checkpoint did before it recorded a digest (the shipped checkpoint is such a file).
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in GPT.state_dict().items()}, str(path),
              metadata={"config": json.dumps(CFG.to_dict()), "model_class": "GPT", "metadata": "{}"})
    loaded, _ = training.load_gpt(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), GPT.state_dict().values()))


@pytest.mark.parametrize("save", [lambda p: training.save_checkpoint(GPT, p), lambda p: TOK.save(p)],
                         ids=["save_checkpoint", "BPETokenizer.save"])
def test_saving_onto_a_folder_fails_before_writing(tmp_path, save):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    for _ in range(2):  # each failed call used to leave one hidden temporary file behind
        with pytest.raises(ValueError, match="path must be the path of a file, got the existing folder"):
            save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]


def test_atomic_path_removes_its_temporary_file_when_the_rename_fails(tmp_path):
    from lib.core import checks

    target = tmp_path / "out.json"
    with pytest.raises(OSError):
        with checks.atomic_path(target) as tmp:
            tmp.write_text("new")
            target.mkdir()  # something else put a folder there meanwhile: the final rename fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"] and target.is_dir()


def test_tokenizer_file_round_trips_its_pattern(tmp_path):
    path = TOK.save(tmp_path / "tok.json")
    assert json.loads(path.read_text())["pattern"] == bpe.GPT2_SPLIT_PATTERN
    loaded = bpe.BPETokenizer.load(path)
    assert loaded.encode("hello world, hello there!") == TOK.encode("hello world, hello there!")


@pytest.mark.parametrize(
    "content, match",
    [
        ("[1, 2, 3]", "JSON object"),  # a JSON list used to raise AttributeError
        ("{not json", "not a valid tokenizer file"),
        (json.dumps({"format": "other"}), "unknown format"),
        (json.dumps({"format": "course-bpe-v1", "byte_ids": list(range(256)), "merges": [[0, 1, 256]],
                     "special_tokens": {"<s>": 256}}), "already the id"),  # a special shadowing a merge
        (json.dumps({"format": "course-bpe-v1", "byte_ids": list(range(256)), "merges": [[0, 999, 256]],
                     "special_tokens": {}}), "not a valid tokenizer file"),
        # load used to ignore the pattern and split with GPT-2's anyway
        (json.dumps({"format": "course-bpe-v1", "pattern": r"\w+|\s+", "byte_ids": list(range(256)), "merges": [],
                     "special_tokens": {}}), "'pattern' must be GPT-2's split pattern"),
    ],
    ids=["json-list", "bad-json", "format", "special-shadows-merge", "merge-of-unknown-id", "other-pattern"],
)
def test_corrupt_tokenizer_files(tmp_path, content, match):
    path = tmp_path / "tok.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        bpe.BPETokenizer.load(path)
    assert "tok.json" in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["", "é", "naïve café", "日本語のテキスト", "emoji 😀👍🏽 and \u200b zero-width", "tab\tnew\nline\r\n", "\x00 nul",
     "<|endoftext|>", "<|endoftext", "a<|endoftext|>b<|endoftext|>", "  leading and trailing  "],
)
def test_unicode_edge_cases_round_trip(text):
    assert TOK.decode(TOK.encode(text)) == text
    assert TOK.decode(TOK.encode(text, allowed_special="none")) == text


def test_prepare_leaves_no_file_behind_when_training_fails(tmp_path, monkeypatch):
    from lib.experiments import prepare

    (tmp_path / "tokenizer.json").write_text("old tokenizer")
    tiny = model.GPTConfig(d_vocab=260, n_ctx=8, d_model=8, n_layers=1, n_heads=2, d_head=4, d_mlp=16)
    with pytest.raises(ValueError, match="model_cfg.d_vocab"):
        prepare.prepare(tmp_path, "some text " * 50, vocab_size=300, model_cfg=tiny, train_cfg=TCFG)
    with pytest.raises(TypeError, match="train_cfg"):
        prepare.prepare(tmp_path, "some text " * 50, vocab_size=260, model_cfg=tiny, train_cfg={})
    with pytest.raises(ValueError, match="text"):
        prepare.prepare(tmp_path, "", vocab_size=260, model_cfg=tiny, train_cfg=TCFG)

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation failed after the tokenizer was trained")

    monkeypatch.setattr(prepare, "evaluate_lm_loss", broken)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        prepare.prepare(tmp_path, "some text, some more text. " * 80, vocab_size=260, model_cfg=tiny, train_cfg=TCFG,
                        batch_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json"]
    assert (tmp_path / "tokenizer.json").read_text() == "old tokenizer"
