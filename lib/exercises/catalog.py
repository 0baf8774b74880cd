"""Every exercise of the course, in one table: difficulty, importance, minutes, the stub's docstring
(shapes and conventions), 1-3 hints and the reference a learner can import to move on.

The learner-copy generator (:mod:`lib.exercises.learner`) turns an entry into the exercise's header,
hints and stub docstring; the checkers (:func:`lib.exercises.checker`) use ``reference`` to let a
notebook run on when an exercise is left unsolved. Keys are the names the notebooks define.
"""

from __future__ import annotations

from dataclasses import dataclass

DIFFICULTY = {"easy": "●○○ easy", "medium": "●●○ medium", "hard": "●●● hard"}
IMPORTANCE = {3: "★★★ core idea", 2: "★★☆ useful", 1: "★☆☆ optional"}


@dataclass(frozen=True)
class ExerciseInfo:
    function: str  # the name the notebook defines
    notebook: str  # "01", "02", ...
    difficulty: str  # easy | medium | hard
    importance: int  # 3 core, 2 useful, 1 optional
    minutes: int  # for a learner who has read the cells before it
    docstring: str  # shapes and conventions, written into the learner's stub
    hints: tuple[str, ...]  # 1-3, from a nudge to nearly the answer
    reference: str  # "module:function" with the same signature

    def __post_init__(self) -> None:
        if self.difficulty not in DIFFICULTY:
            raise ValueError(f"{self.function}: difficulty must be one of {sorted(DIFFICULTY)}, got {self.difficulty!r}")
        if self.importance not in IMPORTANCE:
            raise ValueError(f"{self.function}: importance must be 1, 2 or 3, got {self.importance!r}")
        if not 1 <= len(self.hints) <= 3:
            raise ValueError(f"{self.function}: give 1 to 3 hints, got {len(self.hints)}")
        if not isinstance(self.minutes, int) or self.minutes <= 0:
            raise ValueError(f"{self.function}: minutes must be a positive int, got {self.minutes!r}")

    @property
    def import_line(self) -> str:
        module, _, attr = self.reference.partition(":")
        return f"from {module} import {attr}" + ("" if attr == self.function else f" as {self.function}")

    def header(self) -> str:
        """The markdown a learner copy shows above the exercise."""
        hints = "\n".join(
            f"<details><summary>Hint {i}</summary>\n\n{hint}\n\n</details>" for i, hint in enumerate(self.hints, 1)
        )
        return (
            f"#### ✏️ Exercise `{self.function}` · {DIFFICULTY[self.difficulty]} · {IMPORTANCE[self.importance]} "
            f"· about {self.minutes} min\n\n"
            "Write the body of the function below, then run the cell: its check prints `checks passed`, or "
            "what is wrong with a hint (and the notebook carries on with the reference solution).\n\n"
            f"{hints}\n\n"
            f"<details><summary>Stuck? Move on with the reference</summary>\n\n"
            f"Uncomment the line `# {self.import_line}` in the cell (or run it in a new cell).\n\n</details>"
        )


def _e(*args, **kwargs) -> ExerciseInfo:
    return ExerciseInfo(*args, **kwargs)


_ALL = [
    # 01 · tokenization
    _e("get_pair_counts", "01", "easy", 3, 5,
       "Count adjacent pairs.\n\nids: list[int]. Returns {(a, b): count} over every adjacent pair, overlapping "
       "ones included:\n[5, 5, 5] -> {(5, 5): 2}; a list of 0 or 1 ids -> {}.",
       ("`zip(ids, ids[1:])` walks over the adjacent pairs.",
        "Every pair counts, even when it overlaps the previous one: do not skip ahead."),
       "lib.exercises.tokenization:reference_get_pair_counts"),
    _e("merge_pair", "01", "medium", 3, 10,
       "Replace each occurrence of `pair` by `new_id`, left to right, without overlaps.\n\nids: list[int]; "
       "pair: (a, b); new_id: int. Returns a NEW list (ids is not modified):\n[5, 5, 5], (5, 5), 9 -> [9, 5].",
       ("Walk with an index `i` in a `while` loop: you need to jump by 2 after a match, by 1 otherwise.",
        "Check `i + 1 < len(ids)` before reading `ids[i + 1]`, so the last id is handled.",
        "After a match the two merged ids are used up: `[5, 5, 5]` gives `[9, 5]`, not `[9, 9]`."),
       "lib.exercises.tokenization:reference_merge_pair"),
    _e("apply_merges", "01", "medium", 3, 15,
       "Encode one pre-token by replaying learned merges.\n\nids: list[int] (the bytes); merges: dict "
       "{(a, b): new_id} in the order the merges were learned (rank 0 first). Repeatedly merge the adjacent "
       "pair with the LOWEST rank present, until no adjacent pair is in `merges`. Returns list[int].",
       ("Build `rank = {pair: r for r, pair in enumerate(merges)}` once.",
        "Among the pairs present, `min(..., key=lambda p: rank.get(p, float('inf')))` finds the earliest learned; "
        "if its rank is infinite, stop.",
        "Merge it everywhere with `merge_pair(ids, pair, merges[pair])`, then look again."),
       "lib.exercises.tokenization:reference_apply_merges"),
    # 02 · logits and generation
    _e("softmax", "02", "easy", 3, 5,
       "Probabilities from logits along the last dimension.\n\nlogits: [..., d_vocab] float. Returns the same "
       "shape, each row summing to 1. Must not overflow for logits like 1000, and -inf must give probability 0.",
       ("exp(x) / sum(exp(x)) is right on paper but exp(1000) overflows.",
        "Subtract the row maximum first (`logits.max(dim=-1, keepdim=True).values`): the result is unchanged."),
       "lib.exercises.logits:reference_softmax"),
    _e("apply_temperature", "02", "easy", 2, 5,
       "Scale logits by a temperature.\n\nlogits: [batch, d_vocab]; temperature > 0. Returns logits / temperature "
       "(< 1 sharpens, > 1 flattens).",
       ("One division.",),
       "lib.exercises.logits:reference_apply_temperature"),
    _e("top_k_filter", "02", "medium", 2, 7,
       "Keep the k largest logits per row.\n\nlogits: [batch, d_vocab]; k: int >= 1. Returns the same shape with "
       "every logit below the k-th largest of its row set to -inf (ties at the cut are kept).",
       ("`logits.topk(k, dim=-1).values[..., -1:]` is the k-th largest of each row, kept as a column.",
        "`logits.masked_fill(logits < kth, float('-inf'))`."),
       "lib.exercises.logits:reference_top_k_filter"),
    _e("top_p_filter", "02", "medium", 2, 8,
       "Nucleus filtering.\n\nlogits: [batch, d_vocab]; p in (0, 1]. Keep the smallest set of most likely tokens "
       "whose probability reaches p (the token that crosses p is kept; the top token always is); set the others "
       "to -inf. Returns the same shape, in the ORIGINAL token order.",
       ("Sort each row in descending order and take the softmax of the sorted logits.",
        "The probability accumulated BEFORE a token is `cumsum - probs`; drop the tokens where it is >= p.",
        "Send the drop mask back to the original order with `scatter(-1, order, drop_sorted)`."),
       "lib.exercises.logits:reference_top_p_filter"),
    _e("greedy_generate", "02", "easy", 3, 10,
       "Greedy decoding.\n\nmodel: a GPT (model(tokens) -> logits [batch, pos, d_vocab]); tokens: [batch, pos] "
       "int64; n_new: int. Returns [batch, pos + n_new]: the prompt followed by the argmax token of each step.",
       ("Only the LAST position's logits predict the next token: `model(tokens)[:, -1]`.",
        "Append with `torch.cat([tokens, next_token], dim=1)`, where next_token is `[batch, 1]` "
        "(`argmax(dim=-1, keepdim=True)`)."),
       "lib.exercises.logits:reference_greedy_generate"),
    # 03 · the transformer from its parts
    _e("layer_norm", "03", "easy", 3, 5,
       "LayerNorm over the last dimension.\n\nx: [batch, pos, d_model]; w, b: [d_model]; eps: float. Returns "
       "(x - mean) / sqrt(var + eps) * w + b, with the BIASED variance (mean of squares) and eps inside the root.",
       ("Both the mean and the variance are taken over `dim=-1` with `keepdim=True`.",
        "`x.var()` is unbiased by default (divides by n - 1): compute the mean of squares of the centred x instead."),
       "lib.exercises.transformer:reference_layer_norm"),
    _e("attention_scores", "03", "medium", 3, 10,
       "Step 1 of attention: scaled scores.\n\nx: [batch, pos, d_model]; attn: an Attention module with "
       "W_Q, W_K: [head, d_model, d_head] and b_Q, b_K: [head, d_head]. Returns scores "
       "[batch, head, query_pos, key_pos] = q . k / sqrt(d_head), no mask yet.",
       ("q = x W_Q + b_Q per head: `einsum('batch pos d_model, head d_model d_head -> batch pos head d_head', x, "
        "attn.W_Q) + attn.b_Q` (fancy_einsum), the same for k.",
        "Scores contract d_head: 'batch q_pos head d_head, batch k_pos head d_head -> batch head q_pos k_pos'.",
        "Divide by `attn.cfg.d_head ** 0.5`."),
       "lib.exercises.transformer:reference_attention_scores"),
    _e("apply_causal_mask", "03", "easy", 3, 5,
       "Step 2: hide the future.\n\nscores: [batch, head, query_pos, key_pos] (query_pos == key_pos). Returns a "
       "new tensor with every score whose key comes AFTER its query (key > query) set to -inf; the diagonal stays.",
       ("`torch.ones(n, n, dtype=torch.bool).triu(diagonal=1)` is True exactly above the diagonal.",
        "`scores.masked_fill(future, float('-inf'))` returns a new tensor (the input is not changed)."),
       "lib.exercises.transformer:reference_apply_causal_mask"),
    _e("attention_output", "03", "medium", 3, 10,
       "Step 3: from the pattern to the output.\n\npattern: [batch, head, query_pos, key_pos] (softmax over key_pos); "
       "x: [batch, pos, d_model]; attn: W_V [head, d_model, d_head], b_V [head, d_head], W_O [head, d_head, d_model], "
       "b_O [d_model]. Returns [batch, pos, d_model]: the pattern-weighted values of each head, projected by W_O, "
       "SUMMED over heads, plus b_O (once).",
       ("v is computed like q in step 1, with W_V and b_V.",
        "z = 'batch head q_pos k_pos, batch k_pos head d_head -> batch q_pos head d_head'.",
        "The head axis disappears in the last einsum: 'batch pos head d_head, head d_head d_model -> batch pos d_model'."),
       "lib.exercises.transformer:reference_attention_output"),
    _e("mlp_forward", "03", "easy", 3, 5,
       "The MLP.\n\nx: [batch, pos, d_model]; mlp: W_in [d_model, d_mlp], b_in [d_mlp], W_out [d_mlp, d_model], "
       "b_out [d_model]. Returns gelu(x W_in + b_in) W_out + b_out, [batch, pos, d_model].",
       ("`torch.nn.functional.gelu` (imported as F), the exact (erf) GELU.",),
       "lib.exercises.transformer:reference_mlp_forward"),
    _e("transformer_block", "03", "easy", 3, 5,
       "A pre-LayerNorm block.\n\nresid: [batch, pos, d_model]; block: a TransformerBlock whose ln1, attn, ln2, mlp "
       "are callable modules. Returns resid + attn(ln1(resid)), then that + mlp(ln2(that)).",
       ("Normalise the INPUT of each sub-layer; add its output to the un-normalised stream.",),
       "lib.exercises.transformer:reference_transformer_block"),
    # 04 · training and hooks
    _e("training_step", "04", "medium", 3, 10,
       "One optimizer update.\n\nmodel: a GPT (`model(batch, return_type='loss')` is the mean next-token loss); "
       "optimizer: torch.optim.Optimizer; batch: [batch, pos] int64; grad_clip: float or None. Returns the loss "
       "BEFORE the update as a Python float.",
       ("The order: loss, zero the gradients, backward, clip (if grad_clip is not None), step.",
        "Without `optimizer.zero_grad()` gradients pile up from one step to the next.",
        "`torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)`; return `loss.item()`."),
       "lib.exercises.training_hooks:reference_training_step"),
    _e("lr_schedule", "04", "medium", 2, 10,
       "Linear warm-up, then cosine decay.\n\nstep: int >= 0 (0-based); returns a float. Warm-up: for step < "
       "warmup_steps, max_lr * (step + 1) / warmup_steps (so step 0 already gets max_lr / warmup_steps and step "
       "warmup_steps - 1 gets max_lr). Then, with progress = (step - warmup_steps) / (max_steps - warmup_steps) "
       "capped at 1, floor + (max_lr - floor) * 0.5 * (1 + cos(pi * progress)) where floor = max_lr * min_lr_ratio.",
       ("Mind the (step + 1): the first step must not have a learning rate of 0.",
        "Cap progress at 1.0 so steps past max_steps stay at the floor.",
        "With warmup_steps = 0 there is no warm-up: guard the division with `max(1, max_steps - warmup_steps)`."),
       "lib.exercises.training_hooks:reference_lr_schedule"),
    _e("logit_lens_readout", "04", "easy", 3, 5,
       "Decode a residual vector as if it were the last layer's.\n\nmodel: a GPT; resid: [batch, pos, d_model]. "
       "Returns logits [batch, pos, d_vocab].",
       ("The unembedding was trained on NORMALISED vectors: `model.ln_final` first, then `model.unembed`.",),
       "lib.exercises.training_hooks:reference_logit_lens_readout"),
    _e("mean_ablation_hook", "04", "easy", 2, 5,
       "A hook that mean-ablates one head.\n\nz: [batch, pos, head, d_head] (the value of hook_z); hook: the "
       "HookPoint (unused); head: int; mean_z: [head, d_head]. Returns z with z[:, :, head] replaced by "
       "mean_z[head], the other heads untouched.",
       ("Index the head axis, the THIRD one: `z[:, :, head]`.",),
       "lib.exercises.training_hooks:reference_mean_ablation_hook"),
    # 04b · induction heads
    _e("attention_at_offset", "04b", "easy", 3, 10,
       "How much a head attends `offset` positions back.\n\npattern: [batch, head, query_pos, key_pos] (rows sum "
       "to 1); offset: int >= 0. Returns [head]: the mean, over the batch and over the queries i >= offset, of "
       "pattern[:, :, i, i - offset]. A perfect previous-token head scores 1.0 at offset 1.",
       ("`q = torch.arange(offset, pos)` lists the queries that have a key `offset` back; `q - offset` lists those keys.",
        "`pattern[:, :, q, q - offset]` picks one entry per query (shape [batch, head, n_queries]); `.mean(dim=(0, 2))`."),
       "lib.exercises.circuits:reference_attention_at_offset"),
    # 05 · dense tokens
    _e("add_dense_vectors", "05", "easy", 3, 5,
       "Add fed-back vectors at dense positions.\n\ntoken_embeds, vectors: [batch, pos, d_model]; mask: [batch, pos] "
       "bool. Returns token_embeds + vectors where mask is True, token_embeds elsewhere.",
       ("`mask[..., None]` broadcasts over d_model; a bool mask needs `.to(vectors.dtype)` to multiply.",),
       "lib.exercises.dense:reference_add_dense_vectors"),
    _e("unrolled_logits", "05", "hard", 3, 20,
       "Unrolled dense-token forward.\n\nmodel: a GPT; tokens: [batch, pos] with dense_id at dense positions; "
       "depth: int >= 0. Pass 0 uses no vectors; each of `depth` passes makes hidden states, shifted one position "
       "right (the vector made at t - 1 enters at t) and added at dense positions in the NEXT pass. Returns the "
       "logits [batch, pos, d_vocab] of the final pass (depth 0: an ordinary forward).",
       ("Start from `vectors = torch.zeros_like(model.embed(tokens))`.",
        "Each pass: `hidden, logits = hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask))`, then "
        "`vectors = shift_to_next_position(hidden)`.",
        "Run `depth` such passes, then one more whose logits you return."),
       "lib.exercises.dense:reference_unrolled_logits"),
    _e("continuation_loss", "05", "medium", 2, 10,
       "Mean loss of the tokens after `position`.\n\nlogits: [batch, pos, d_vocab]; tokens: [batch, pos]; position: "
       "int. Returns [batch]: the mean of -log p(tokens[:, i + 1]) over i = position .. pos - 2.",
       ("Token i + 1 is predicted by the logits at i: use `logits[:, position:-1]` against `tokens[:, position + 1:]`.",
        "`log_softmax(-1).gather(-1, targets[..., None])`, then `.mean(dim=1)` per row."),
       "lib.exercises.dense:reference_continuation_loss"),
    # 06 · thought insertion
    _e("thought_ranks", "06", "easy", 2, 5,
       "Rank of the thought token at every position.\n\nlogits: [batch, pos, d_vocab]; thought_id: int. Returns "
       "[batch, pos] int: how many tokens have a STRICTLY larger logit (0 = the top choice; ties do not count).",
       ("`logits[..., thought_id:thought_id + 1]` keeps the last axis so it broadcasts.",),
       "lib.exercises.thoughts:reference_thought_ranks"),
    _e("insert_tokens", "06", "hard", 3, 25,
       "Batched insertion with an index map.\n\ntokens: [batch, pos]; lengths, positions: [batch] (position -1: no "
       "insertion); token_id, pad_id: int. Returns (new_tokens [batch, pos + 1], new_lengths [batch], index_map "
       "[batch, pos]) where row b is tokens[b, :t] + [token_id] + tokens[b, t:length] padded with pad_id, and "
       "index_map[b, j] is the new index of old token j (-1 at padding).",
       ("Compute the index map first: j before the insertion, j + 1 from it on, -1 where j >= length.",
        "Scatter the real tokens to their new places with advanced indexing `new[rows[real], index_map[real]]`.",
        "Write token_id at (b, positions[b]) only for the rows with positions[b] >= 0."),
       "lib.exercises.thoughts:reference_insert_tokens"),
    _e("insertion_gain", "06", "medium", 2, 15,
       "How much a thought changed the text's log-likelihood.\n\nlp_without: [batch, pos]; lp_with: [batch, pos + 1] "
       "(per-token log-probabilities); positions, lengths: [batch]. Returns [batch]: sum over old tokens j with "
       "t <= j < length of lp_with[b, j + 1] - lp_without[b, j]; 0 for rows with t = -1.",
       ("Old token j sits at j + 1 once the thought is in: compare `lp_with[:, 1:]` with `lp_without`.",
        "Mask with (t >= 0) & (j >= t) & (j < length); the thought's own entry is never a target."),
       "lib.exercises.thoughts:reference_insertion_gain"),
    # 07 · the planning loss
    _e("cross_attention_mask", "07", "medium", 3, 10,
       "Causal cross-attention mask.\n\nn_query, n_key: int (n_query <= n_key; the queries are the LAST n_query "
       "positions). Returns [n_query, n_key] bool, True where query i may see key j: j <= n_key - n_query + i.",
       ("`torch.ones(n_query, n_key, dtype=torch.bool).tril(diagonal=offset)` with offset = n_key - n_query.",),
       "lib.exercises.planning:reference_cross_attention_mask"),
    _e("future_aggregate", "07", "easy", 2, 10,
       "The future summary the planning loss predicts.\n\nE: [batch, pos, d]; n: int horizon. Returns "
       "[batch, pos - n, d] whose entry i is E[:, i+1]/1 + E[:, i+2]/2 + ... + E[:, i+n]/n.",
       ("Keep `pos - n` positions; the z-th term is the slice `E[:, z : z + pos - n] / z`.",),
       "lib.exercises.planning:reference_future_aggregate"),
    _e("cosine_disaffinity", "07", "easy", 2, 5,
       "A loss that is 0 for the same direction, 0.5 orthogonal, 1 opposite.\n\na, b: [..., d]. Returns a 0-d tensor: "
       "the mean over positions of 1 - (cos(a, b) + 1) / 2, the cosine along the last dimension.",
       ("`F.cosine_similarity(a, b, dim=-1)`.",),
       "lib.exercises.planning:reference_cosine_disaffinity"),
    # 08 · the comparison
    _e("widest_within", "08", "easy", 2, 5,
       "Match parameters.\n\nbudget: int; n_params_of: width -> int; widths: iterable of int in any order. Returns "
       "the largest width whose parameter count is <= budget.",
       ("Filter, then `max`; a model exactly at the budget fits.",),
       "lib.exercises.harness:reference_widest_within"),
    _e("verdict", "08", "medium", 3, 10,
       "The course's one rule for a verdict.\n\nbaseline, method: lists of per-seed values; higher_is_better: bool; "
       "min_effect: float >= 0. Returns 'better' if EVERY method seed beats EVERY baseline seed (in the task's "
       "direction) AND the means differ by more than min_effect; 'worse' the same the other way; else "
       "'no measurable effect'.",
       ("Flip the sign of losses (`sign = 1 if higher_is_better else -1`) and reason about 'higher is better' only.",
        "Separation: min of the method > max of the baseline; size: mean difference > min_effect."),
       "lib.exercises.harness:reference_verdict_as_written"),
    # 09 · dense tokens the model places, selects and learns to emit
    _e("selection_gain", "09", "medium", 3, 15,
       "How much the candidate vectors of one pass help.\n\nmodel: a GPT; tokens, targets: [batch, pos] (targets "
       "-100 where nothing is scored); dense_id: int. Returns [batch]: the targets' summed log-likelihood with the "
       "vectors fed in minus without them.",
       ("`hidden, logits = hidden_and_logits(model, model.embed(tokens))` is pass 0: the 'without' logits and the "
        "candidate vectors.",
        "Pass 1 feeds `shift_to_next_position(hidden)` at the dense positions (`add_dense_vectors`); score both "
        "passes with `target_log_likelihood`."),
       "lib.exercises.dense_open:reference_selection_gain"),
    _e("useful_counts", "09", "easy", 3, 5,
       "The dense tokens scoring found useful.\n\nprobs: [batch, budgets] float, the answer's probability with "
       "0, 1, ... dense tokens; threshold: float in (0, 1]. Returns [batch] int: the fewest dense tokens whose "
       "probability is >= threshold, or the largest budget (budgets - 1) when none is.",
       ("`ok = probs >= threshold`; `ok.float().argmax(dim=1)` is the first True of each row.",
        "A row with no True must get `probs.shape[1] - 1`: `torch.where(ok.any(dim=1), ...)`."),
       "lib.methods.dense_emit:useful_counts"),
    _e("unrolled_from", "09", "medium", 2, 10,
       "An unrolled forward with a warm start.\n\nmodel: a GPT; tokens: [batch, pos]; dense_id: int; depth: int >= "
       "0; init: [batch, pos, d_model], the pre-computed vectors (zero away from dense positions). Returns the "
       "[batch, pos, d_vocab] logits of depth + 1 passes: pass 0 feeds init, each later pass the shifted hidden "
       "states of the pass before.",
       ("`embeds = model.embed(tokens)`; `mask = tokens == dense_id`; start with `vectors = init.detach()`.",
        "Loop depth times: `hidden, _ = hidden_and_logits(model, add_dense_vectors(embeds, vectors, mask))`, "
        "`vectors = shift_to_next_position(hidden)`; then one last pass for the logits."),
       "lib.exercises.dense_open:reference_unrolled_from"),
]

EXERCISES: dict[str, ExerciseInfo] = {e.function: e for e in _ALL}
if len(EXERCISES) != len(_ALL):  # a duplicated name would silently shadow an entry
    raise ValueError("two exercises share a name in lib.exercises.catalog")


def exercise_info(function: str) -> ExerciseInfo:
    """The catalog entry of an exercise, or a ``KeyError`` naming the known ones."""
    if function not in EXERCISES:
        raise KeyError(f"no exercise named {function!r}; known: {sorted(EXERCISES)}")
    return EXERCISES[function]


def total_minutes(notebook: str) -> int:
    """Minutes of exercises in one notebook ("01" ...), for pacing a session."""
    return sum(e.minutes for e in _ALL if e.notebook == notebook)
