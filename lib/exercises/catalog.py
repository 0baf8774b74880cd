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
            f"Write the body of `{self.function}` in the code cell below (a cell may hold more than one exercise), "
            "then run the cell: its check prints `checks passed`, or what is wrong with a hint; after a failed "
            f"check your version stays as `{self.function}_yours` and the notebook carries on with the reference.\n\n"
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
       ("Picture a window two ids wide sliding over the list one step at a time: each position of the window is "
        "one pair.",
        "Every position of the window counts, so pairs may overlap: [5, 5, 5] holds the pair (5, 5) twice. Python"
        " can pair each id with its right neighbour without any index arithmetic (think of walking two views of "
        "the list side by side).",
        "A dict that starts empty and adds 1 for each pair met is all the bookkeeping needed; a list of 0 or 1 "
        "ids has no window at all."),
       "lib.exercises.tokenization:reference_get_pair_counts"),
    _e("merge_pair", "01", "medium", 3, 10,
       "Replace each occurrence of `pair` by `new_id`, left to right, without overlaps.\n\nids: list[int]; "
       "pair: (a, b); new_id: int. Returns a NEW list (ids is not modified):\n[5, 5, 5], (5, 5), 9 -> [9, 5].",
       ("Build the answer in a new list while you walk over `ids`; `ids` itself must stay as it was.",
        "At each position, look at the id there and the one after it (if there is one). A match produces ONE new "
        "id and uses up both ids; anything else is copied as it is.",
        "Because a match consumes two ids and a copy one, a `for` loop with a fixed step does not fit: an index "
        "you advance yourself does. Make sure the very last id is copied when it is not part of a match."),
       "lib.exercises.tokenization:reference_merge_pair"),
    _e("apply_merges", "01", "medium", 3, 15,
       "Encode one pre-token by replaying learned merges.\n\nids: list[int] (the bytes); merges: dict "
       "{(a, b): new_id} in the order the merges were learned (rank 0 first). Repeatedly merge the adjacent "
       "pair with the LOWEST rank present, until no adjacent pair is in `merges`. Returns list[int].",
       ("Merges are replayed in the order they were LEARNED, not in the order their pairs appear in the text, and"
        " not by how often they occur.",
        "Give each pair its rank (its position in `merges`). Among the adjacent pairs present in the current ids,"
        " the one with the smallest rank goes first; pairs not in `merges` can never be chosen.",
        "Merge that pair everywhere (your merge_pair does exactly that), then look at the new ids again; stop "
        "when no adjacent pair has a rank."),
       "lib.exercises.tokenization:reference_apply_merges"),
    # 02 · logits and generation
    _e("softmax", "02", "easy", 3, 5,
       "Probabilities from logits along the last dimension.\n\nlogits: [..., d_vocab] float. Returns the same "
       "shape, each row summing to 1. Must not overflow for logits like 1000, and -inf must give probability 0.",
       ("exp(x) / sum(exp(x)) is right on paper; try it on a logit of 1000 and see what float32 makes of "
        "exp(1000).",
        "Shifting every logit of a row by the same constant leaves that row's softmax unchanged. Which constant "
        "makes every exponent <= 0, so that no exp can overflow?",
        "Use each ROW's maximum (kept as a column so it broadcasts), not the maximum of the whole tensor: a row "
        "far below the global maximum would underflow to 0 / 0. A -inf logit then gives exp(-inf) = 0 by itself."),
       "lib.exercises.logits:reference_softmax"),
    _e("apply_temperature", "02", "easy", 2, 5,
       "Scale logits by a temperature.\n\nlogits: [batch, d_vocab]; temperature > 0. Returns logits / temperature "
       "(< 1 sharpens, > 1 flattens).",
       ("A temperature below 1 should make the distribution sharper (the logits further apart), above 1 flatter. "
        "Which single arithmetic operation does that to the logits?",),
       "lib.exercises.logits:reference_apply_temperature"),
    _e("top_k_filter", "02", "medium", 2, 7,
       "Keep the k largest logits per row.\n\nlogits: [batch, d_vocab]; k: int >= 1. Returns the same shape with "
       "every logit below the k-th largest of its row set to -inf (ties at the cut are kept).",
       ("Find, for each row, the value of its k-th largest logit: everything below that value goes.",
        "torch can give you the k largest values of each row; the smallest of them is the cut. Keep it as a "
        "column [batch, 1] so that it compares with every entry of its row.",
        "Compare every logit with its row's cut and fill the ones BELOW it with -inf in a new tensor. Comparing "
        "with a value (rather than keeping the k positions topk returns) is what keeps ties at the cut."),
       "lib.exercises.logits:reference_top_k_filter"),
    _e("top_p_filter", "02", "medium", 2, 8,
       "Nucleus filtering.\n\nlogits: [batch, d_vocab]; p in (0, 1]. Keep the smallest set of most likely tokens "
       "whose probability reaches p (the token that crosses p is kept; the top token always is); set the others "
       "to -inf. Returns the same shape, in the ORIGINAL token order.",
       ("Nucleus filtering reasons about the tokens from the most likely down: sort each row first, remembering "
        "where each sorted entry came from.",
        "Turn the sorted logits into probabilities and accumulate them. A token is kept when the probability of "
        "the tokens ranked ABOVE it is still below p; so the token that crosses p is kept, and the top token "
        "always is.",
        "Decide which sorted positions to drop, then send that decision back to the original token order (the "
        "permutation the sort returned tells you where) before filling the dropped logits with -inf."),
       "lib.exercises.logits:reference_top_p_filter"),
    _e("greedy_generate", "02", "easy", 3, 10,
       "Greedy decoding.\n\nmodel: a GPT (model(tokens) -> logits [batch, pos, d_vocab]); tokens: [batch, pos] "
       "int64; n_new: int. Returns [batch, pos + n_new]: the prompt followed by the argmax token of each step. "
       "The model is left in the train/eval mode it came in.",
       ("The model returns logits for every position; which position's logits predict the token that comes next?",
        "Each step: pick the most likely next token for every row, append it to the sequence, and feed the LONGER"
        " sequence to the model at the next step.",
        "The new token must be [batch, 1] to be appended along the position axis. Leave the model in the "
        "train/eval mode it came in."),
       "lib.exercises.logits:reference_greedy_generate"),
    # 03 · the transformer from its parts
    _e("layer_norm", "03", "easy", 3, 5,
       "LayerNorm over the last dimension.\n\nx: [batch, pos, d_model]; w, b: [d_model]; eps: float. Returns "
       "(x - mean) / sqrt(var + eps) * w + b, with the BIASED variance (mean of squares) and eps inside the root.",
       ("Each vector is normalised on its own: the statistics are taken over the last axis (d_model), kept so "
        "that they broadcast.",
        "Centre x, then divide by the square root of (variance + eps): eps inside the root.",
        "The variance here is the BIASED one, the mean of the squared centred values; torch's var divides by n - "
        "1 unless told otherwise. Scale by w and shift by b last."),
       "lib.exercises.transformer:reference_layer_norm"),
    _e("attention_scores", "03", "medium", 3, 10,
       "Step 1 of attention: scaled scores.\n\nx: [batch, pos, d_model]; attn: an Attention module with "
       "W_Q, W_K: [head, d_model, d_head] and b_Q, b_K: [head, d_head]. Returns scores "
       "[batch, head, query_pos, key_pos] = q . k / sqrt(d_head), no mask yet.",
       ("Each head has its own query and key projections: compute q and k as [batch, pos, head, d_head] (with "
        "their biases) before combining them.",
        "A score is the dot product of one query and one key within a head: contract d_head and keep batch, head,"
        " query position and key position, in that order.",
        "Scale the scores by 1 / sqrt(d_head) (the head's dimension, not d_model); no mask at this step."),
       "lib.exercises.transformer:reference_attention_scores"),
    _e("apply_causal_mask", "03", "easy", 3, 5,
       "Step 2: hide the future.\n\nscores: [batch, head, query_pos, key_pos] (query_pos == key_pos). Returns a "
       "new tensor with every score whose key comes AFTER its query (key > query) set to -inf; the diagonal stays.",
       ("Which entries are 'the future'? Those whose key index is greater than the query index: a strict upper "
        "triangle.",
        "torch can build a boolean upper triangle that leaves out the diagonal; fill those places with -inf in a "
        "NEW tensor (the input must not change), so that the softmax gives them exactly 0."),
       "lib.exercises.transformer:reference_apply_causal_mask"),
    _e("attention_output", "03", "medium", 3, 10,
       "Step 3: from the pattern to the output.\n\npattern: [batch, head, query_pos, key_pos] (softmax over key_pos); "
       "x: [batch, pos, d_model]; attn: W_V [head, d_model, d_head], b_V [head, d_head], W_O [head, d_head, d_model], "
       "b_O [d_model]. Returns [batch, pos, d_model]: the pattern-weighted values of each head, projected by W_O, "
       "SUMMED over heads, plus b_O (once).",
       ("Values are computed like the queries of step 1, with W_V and b_V.",
        "For each head and query, the pattern weights the values over the KEY positions: a weighted sum that "
        "leaves [batch, query_pos, head, d_head].",
        "W_O maps each head back to d_model; the heads' contributions are SUMMED (the head axis disappears in "
        "that contraction), and b_O is added once."),
       "lib.exercises.transformer:reference_attention_output"),
    _e("mlp_forward", "03", "easy", 3, 5,
       "The MLP.\n\nx: [batch, pos, d_model]; mlp: W_in [d_model, d_mlp], b_in [d_mlp], W_out [d_mlp, d_model], "
       "b_out [d_model]. Returns gelu(x W_in + b_in) W_out + b_out, [batch, pos, d_model].",
       ("Two projections with a non-linearity between them: up to d_mlp with W_in and b_in, GELU, down with W_out"
        " and b_out. The GELU is the exact (erf) one, torch's default.",),
       "lib.exercises.transformer:reference_mlp_forward"),
    _e("transformer_block", "03", "easy", 3, 5,
       "A pre-LayerNorm block.\n\nresid: [batch, pos, d_model]; block: a TransformerBlock whose ln1, attn, ln2, mlp "
       "are callable modules. Returns resid + attn(ln1(resid)), then that + mlp(ln2(that)).",
       ("Pre-LayerNorm: each sub-layer reads a NORMALISED copy of the stream (attention with ln1, the MLP with "
        "ln2) and its output is added to the un-normalised stream. The MLP reads the stream after attention was "
        "added.",),
       "lib.exercises.transformer:reference_transformer_block"),
    # 04 · training and hooks
    _e("training_step", "04", "medium", 3, 10,
       "One optimizer update.\n\nmodel: a GPT (`model(batch, return_type='loss')` is the mean next-token loss); "
       "optimizer: torch.optim.Optimizer; batch: [batch, pos] int64; grad_clip: float or None. Returns the loss "
       "BEFORE the update as a Python float.",
       ("One update has five moves: compute the loss, clear old gradients, compute new ones, limit their size "
        "(only when grad_clip is set), apply the update. Think about which must come before which.",
        "Gradients ACCUMULATE in PyTorch: if they are not cleared before the new ones are computed, the previous "
        "step's gradients are added in. Clipping acts on gradients, so it needs them to exist already.",
        "Clip the global NORM of all the parameters' gradients together (torch.nn.utils has a function for it), "
        "and return the loss the gradients came from, as a Python number."),
       "lib.exercises.training_hooks:reference_training_step"),
    _e("lr_schedule", "04", "medium", 2, 10,
       "Linear warm-up, then cosine decay.\n\nstep: int >= 0 (0-based); returns a float. Warm-up: for step < "
       "warmup_steps, max_lr * (step + 1) / warmup_steps (so step 0 already gets max_lr / warmup_steps and step "
       "warmup_steps - 1 gets max_lr). Then, with progress = (step - warmup_steps) / (max_steps - warmup_steps) "
       "capped at 1, floor + (max_lr - floor) * 0.5 * (1 + cos(pi * progress)) where floor = max_lr * min_lr_ratio.",
       ("Two regimes: a linear climb during warm-up, then half a cosine wave from max_lr down to the floor.",
        "Warm-up is 0-based: step 0 must already get max_lr / warmup_steps, and the last warm-up step max_lr. "
        "After warm-up, progress runs from 0 to 1 over the remaining steps.",
        "Past max_steps the rate stays at the floor (progress never exceeds 1), and warmup_steps = 0 must not "
        "divide by zero anywhere."),
       "lib.exercises.training_hooks:reference_lr_schedule"),
    _e("logit_lens_readout", "04", "easy", 3, 5,
       "Decode a residual vector as if it were the last layer's.\n\nmodel: a GPT; resid: [batch, pos, d_model]. "
       "Returns logits [batch, pos, d_vocab].",
       ("The unembedding was trained on the output of the model's LAST normalisation, not on raw residual "
        "vectors: decode the residual the way the model decodes its final layer.",),
       "lib.exercises.training_hooks:reference_logit_lens_readout"),
    _e("mean_ablation_hook", "04", "easy", 2, 5,
       "A hook that mean-ablates one head.\n\nz: [batch, pos, head, d_head] (the value of hook_z); hook: the "
       "HookPoint (unused); head: int; mean_z: [head, d_head]. Returns z with z[:, :, head] replaced by "
       "mean_z[head], the other heads untouched.",
       ("z is [batch, pos, head, d_head]: the head is the THIRD axis. Replace that one head, at every batch entry"
        " and position, by its own mean mean_z[head]; the other heads stay untouched.",),
       "lib.exercises.training_hooks:reference_mean_ablation_hook"),
    # 04b · induction heads
    _e("attention_at_offset", "04b", "easy", 3, 10,
       "How much a head attends `offset` positions back.\n\npattern: [batch, head, query_pos, key_pos] (rows sum "
       "to 1); offset: int >= 0. Returns [head]: the mean, over the batch and over the queries i >= offset, of "
       "pattern[:, :, i, i - offset]. A perfect previous-token head scores 1.0 at offset 1.",
       ("For query i, the key `offset` positions back is i - offset; only the queries i >= offset have one.",
        "Two aligned index vectors (one of queries, one of their keys) pick one pattern entry per query with "
        "advanced indexing; average those over the batch and the queries, keeping one number per head."),
       "lib.exercises.circuits:reference_attention_at_offset"),
    # 05 · dense tokens
    _e("add_dense_vectors", "05", "easy", 3, 5,
       "Add fed-back vectors at dense positions.\n\ntoken_embeds, vectors: [batch, pos, d_model]; mask: [batch, pos] "
       "bool. Returns token_embeds + vectors where mask is True, token_embeds elsewhere, as a NEW tensor (the "
       "inputs are not modified) through which gradients reach both inputs.",
       ("Every position keeps its token embedding; the vector is ADDED only where mask is True. A bool mask "
        "becomes a 0/1 number once converted to the vectors' dtype, and needs a trailing axis to scale a whole "
        "vector. Return a new tensor, and keep it differentiable (no detach).",),
       "lib.exercises.dense:reference_add_dense_vectors"),
    _e("unrolled_logits", "05", "hard", 3, 20,
       "Unrolled dense-token forward.\n\nmodel: a GPT; tokens: [batch, pos] with dense_id at dense positions; "
       "depth: int >= 0. Pass 0 uses no vectors; each of `depth` passes makes hidden states, shifted one position "
       "right (the vector made at t - 1 enters at t) and added at dense positions in the NEXT pass. Returns the "
       "logits [batch, pos, d_vocab] of the final pass (depth 0: an ordinary forward). The gradient must flow "
       "back through every pass (no detach).",
       ("Pass 0 is an ordinary forward: the dense positions get only their token embedding (no vector yet).",
        "Each pass's hidden states become the next pass's vectors: shifted one position right (the vector made at"
        " t - 1 enters at t; the library has a helper for the shift) and added at the dense positions only. Keep "
        "the gradient flowing through every pass: no detach.",
        "`depth` passes make vectors; one more pass, fed the last vectors, gives the logits you return: depth + 1"
        " passes in all."),
       "lib.exercises.dense:reference_unrolled_logits"),
    _e("continuation_loss", "05", "medium", 2, 10,
       "Mean loss of the tokens after `position`.\n\nlogits: [batch, pos, d_vocab]; tokens: [batch, pos]; position: "
       "int. Returns [batch]: the mean of -log p(tokens[:, i + 1]) over i = position .. pos - 2.",
       ("The logits at position i predict the token at i + 1: the prediction and its target are one step apart.",
        "The continuation is the tokens AFTER `position`; the first of them is predicted by the logits at "
        "`position` itself, the last by the logits at the second-to-last position.",
        "Take log-probabilities (not raw logits), pick each target's entry, and average the negatives per row: "
        "one value per row."),
       "lib.exercises.dense:reference_continuation_loss"),
    # 06 · thought insertion
    _e("thought_ranks", "06", "easy", 2, 5,
       "Rank of the thought token at every position.\n\nlogits: [batch, pos, d_vocab]; thought_id: int. Returns "
       "[batch, pos] int: how many tokens have a STRICTLY larger logit (0 = the top choice; ties do not count).",
       ("The rank is the number of OTHER tokens the model prefers: those whose logit is strictly larger than the "
        "thought's. Keep the thought's logit as [batch, pos, 1] so that it compares with every entry of its row.",),
       "lib.exercises.thoughts:reference_thought_ranks"),
    _e("insert_tokens", "06", "hard", 3, 25,
       "Batched insertion with an index map.\n\ntokens: [batch, pos]; lengths, positions: [batch] (position -1: no "
       "insertion); token_id, pad_id: int. Returns (new_tokens [batch, pos + 1], new_lengths [batch], index_map "
       "[batch, pos]) where row b is tokens[b, :t] + [token_id] + tokens[b, t:length] padded with pad_id, and "
       "index_map[b, j] is the new index of old token j (-1 at padding).",
       ("Work out where every old token goes before moving anything: before the insertion it stays, from the "
        "insertion on it moves one place right, and padding goes nowhere (-1).",
        "With that index map, the real tokens can be written to their new places in one advanced-indexing "
        "assignment into a tensor pre-filled with pad_id.",
        "Write token_id at the insertion point only in the rows that have one (position >= 0), and grow only "
        "those rows' lengths."),
       "lib.exercises.thoughts:reference_insert_tokens"),
    _e("insertion_gain", "06", "medium", 2, 15,
       "How much a thought changed the text's log-likelihood.\n\nlp_without: [batch, pos]; lp_with: [batch, pos + 1] "
       "(per-token log-probabilities); positions, lengths: [batch]. Returns [batch]: sum over old tokens j with "
       "t <= j < length of lp_with[b, j + 1] - lp_without[b, j]; 0 for rows with t = -1.",
       ("Once the thought is in, every old token from the insertion on sits one place later in lp_with: compare "
        "each old token with itself, not with whatever now occupies its old index.",
        "Only the text tokens at and after the insertion and before the row's length count; the thought's own "
        "entry is never a target, and a row with position -1 gains 0."),
       "lib.exercises.thoughts:reference_insertion_gain"),
    # 07 · the planning loss
    _e("cross_attention_mask", "07", "medium", 3, 10,
       "Causal cross-attention mask.\n\nn_query, n_key: int (n_query <= n_key; the queries are the LAST n_query "
       "positions). Returns [n_query, n_key] bool, True where query i may see key j: j <= n_key - n_query + i.",
       ("With a cache the queries are the LAST n_query of n_key positions: query i sits at absolute position "
        "n_key - n_query + i and may see every key up to and including that position. A lower-triangular mask, "
        "shifted by that offset, says exactly this.",),
       "lib.exercises.planning:reference_cross_attention_mask"),
    _e("future_aggregate", "07", "easy", 2, 10,
       "The future summary the planning loss predicts.\n\nE: [batch, pos, d]; n: int horizon. Returns "
       "[batch, pos - n, d] whose entry i is E[:, i+1]/1 + E[:, i+2]/2 + ... + E[:, i+n]/n.",
       ("Only the first pos - n positions have n embeddings ahead of them. The z-th embedding ahead (z = 1 .. n) "
        "of every kept position is one slice of E, shifted by z; weight it by 1/z and add the n slices.",),
       "lib.exercises.planning:reference_future_aggregate"),
    _e("cosine_disaffinity", "07", "easy", 2, 5,
       "A loss that is 0 for the same direction, 0.5 orthogonal, 1 opposite.\n\na, b: [..., d]. Returns a 0-d tensor: "
       "the mean over positions of 1 - (cos(a, b) + 1) / 2, the cosine along the last dimension.",
       ("torch computes the cosine between vectors along a chosen dimension (here the last one); map it from [-1,"
        " 1] to a loss in [0, 1] that is 0 for the same direction, then average over positions.",),
       "lib.exercises.planning:reference_cosine_disaffinity"),
    # 08 · the comparison
    _e("widest_within", "08", "easy", 2, 5,
       "Match parameters.\n\nbudget: int; n_params_of: width -> int; widths: iterable of int in any order. Returns "
       "the largest width whose parameter count is <= budget.",
       ("Keep the widths whose parameter count is at most the budget (a model exactly at the budget fits), then "
        "take the largest of them: the widths may come in any order.",),
       "lib.exercises.harness:reference_widest_within"),
    _e("verdict", "08", "medium", 3, 10,
       "The course's one rule for a verdict.\n\nbaseline, method: lists of per-seed values; higher_is_better: bool; "
       "min_effect: float >= 0. Returns 'better' if EVERY method seed beats EVERY baseline seed (in the task's "
       "direction) AND the means differ by more than min_effect; 'worse' the same the other way; else "
       "'no measurable effect'.",
       ("Reduce both directions to one: multiply by -1 when lower is better, then reason about 'higher is better'"
        " only.",
        "Two conditions, both strict: every method seed beats every baseline seed (the worst method seed above "
        "the best baseline seed; a tie does not beat), and the means differ by MORE than min_effect. 'worse' is "
        "the mirror image."),
       "lib.exercises.harness:reference_verdict_as_written"),
    _e("chain_of_thought_targets", "08", "medium", 3, 15,
       "Write the chain of thought into a pointer batch's slots.\n\nbatch: a PointerBatch laid out with dense slots "
       "(filler 'dense'): tokens, targets [batch, pos] int (targets -100 except the answer's, at answer_pos - 1); "
       "chain [batch, max_hops] (chain[:, k] is the node after k + 1 lookups); start_pos [batch]; useful [batch, pos] "
       "bool, True at the h - 1 dense slots after the start node (decoy dense tokens before it are not slots). "
       "Returns NEW (tokens, targets), each [batch, pos], the batch unchanged: slot i (i = 1 right after the start "
       "node) holds chain[:, i - 1], and each written slot is also a target at the position before it (position p "
       "predicts token p + 1); the answer's target stays.",
       ("The slots are already marked: batch.useful is True exactly at the dense tokens after the start node, and "
        "False at the decoys before it. Work on copies of tokens and targets: the batch itself must not change.",
        "A slot's number is its distance from the start node: the first slot after x is slot 1 and holds the node "
        "one lookup away, the first entry of its row of chain. The (row, column) pairs where useful is True, minus "
        "each row's start_pos, give every slot's number at once.",
        "Write the chain values at those (row, column) pairs of the copied tokens, and the same values into the "
        "copied targets one column to the left (the position that predicts the slot). The answer's target is "
        "already in the copy and stays."),
       "lib.exercises.controls:reference_chain_of_thought_targets"),
    _e("multi_token_heads_loss", "08", "medium", 2, 10,
       "The loss of multi-token prediction, from each head's logits.\n\nhead_logits: a list of k tensors [batch, pos, "
       "d_vocab], one per head (head i, 0-based, predicts i + 1 tokens ahead); targets: [batch, pos] int, the "
       "NEXT-token targets (-100 where nothing is scored). Head i at position t is scored on targets[:, t + i] (head "
       "0 is the ordinary next-token loss); a -100 or a position past the row's end is not scored. Returns a 0-d "
       "tensor through which gradients reach the logits: the mean over heads of each head's mean cross-entropy over "
       "its scored positions, heads with nothing to score left out (at least one head has something to score).",
       ("Head 0 is the ordinary next-token head: the targets already are the next tokens, so it needs no shift. "
        "Each further head looks one token further ahead than the one before it.",
        "For head i, build targets that hold, at position t, the target i positions further on, and -100 in the "
        "last i positions (nothing to score there); cross-entropy told to ignore -100 then averages over that "
        "head's scored positions only.",
        "Score each head on its own, keep the heads that have at least one scored position, and average their "
        "losses: a mean over heads, not a sum, and not one mean over every head's positions pooled together."),
       "lib.methods.multi_token:heads_loss"),
    # 09 · dense tokens the model places, selects and learns to emit
    _e("selection_gain", "09", "medium", 3, 15,
       "How much the candidate vectors of one pass help.\n\nmodel: a GPT; tokens, targets: [batch, pos] (targets "
       "-100 where nothing is scored); dense_id: int. Returns [batch]: the targets' summed log-likelihood with the "
       "vectors fed in minus without them.",
       ("Pass 0 feeds the plain embeddings: its logits are the 'without' score and its hidden states are the "
        "candidate vectors.",
        "Pass 1 feeds those vectors, shifted one position right, at the dense positions only; score both passes "
        "with the targets' summed log-likelihood (a library helper does it) and return with minus without."),
       "lib.exercises.dense_open:reference_selection_gain"),
    _e("useful_counts", "09", "easy", 3, 5,
       "The dense tokens scoring found useful.\n\nprobs: [batch, budgets] float, the answer's probability with "
       "0, 1, ... dense tokens; threshold: float in (0, 1]. Returns [batch] int: the fewest dense tokens whose "
       "probability is >= threshold, or the largest budget (budgets - 1) when none is.",
       ("For each row, find the first budget whose probability reaches the threshold (>=: a probability exactly "
        "at it counts).",
        "argmax over a boolean row, converted to numbers, finds its first True; but a row with no True needs the "
        "largest budget instead, so tell those rows apart."),
       "lib.methods.dense_emit:useful_counts"),
    _e("unrolled_from", "09", "medium", 2, 10,
       "An unrolled forward with a warm start.\n\nmodel: a GPT; tokens: [batch, pos]; dense_id: int; depth: int >= "
       "0; init: [batch, pos, d_model], the pre-computed vectors (zero away from dense positions). Returns the "
       "[batch, pos, d_vocab] logits of depth + 1 passes: pass 0 feeds init, each later pass the shifted hidden "
       "states of the pass before.",
       ("Like unrolled_logits, but pass 0 already feeds `init` at the dense positions (with no gradient through "
        "it).",
        "Each of the `depth` further passes feeds the hidden states of the pass before, shifted one position "
        "right; the logits of the last of the depth + 1 passes are the answer."),
       "lib.exercises.dense_open:reference_unrolled_from"),
    # 10 · what a continuous thought holds
    _e("bfs_frontiers", "10", "easy", 3, 10,
       "The search frontiers of a directed graph.\n\nedges: list of (u, v) pairs, an edge from u to v; start: int; "
       "n_steps: int >= 0. Returns a list of n_steps + 1 sets: frontier 0 is {start}, frontier k the nodes first "
       "reached after exactly k steps (empty once the search has nowhere new to go).",
       ("Keep two things as you go: the last frontier, and every node reached so far.",
        "The next frontier is every child of a node in the last frontier, minus the nodes already reached; an edge "
        "(u, v) leads from u to v only.",
        "A dict from each node to the list of its children, built once from `edges`, keeps each step short."),
       "lib.exercises.graphs:reference_bfs_frontiers"),
    _e("reachable_candidate", "10", "easy", 2, 5,
       "The answer to a reachability question.\n\nedges: list of (u, v) pairs; start: int; candidates: (c1, c2), "
       "exactly one of which is reachable from start. Returns that candidate's label (an int, not its position).",
       ("A node is reachable when some frontier of the start holds it; how many steps can a path of this graph "
        "take at most?",
        "Grow a set of reached nodes from {start}: add the end of every edge whose start is already in it, until "
        "nothing new joins (the union of bfs_frontiers' sets); return the candidate in it."),
       "lib.exercises.graphs:reference_reachable_candidate"),
    _e("group_means", "10", "medium", 3, 10,
       "The probe's group means.\n\nscores: [batch, n_labels] float, one score per node label and row; groups: "
       "[batch, n_labels] int, each label's group as an index into GROUPS (-1: in no group). Returns {group name: "
       "mean} for the four names of GROUPS: each row's mean over its members, then the mean over the rows that "
       "have any; NaN for a group no row has.",
       ("Work one group at a time: a 0/1 mask of its members gives each row's member count and score sum.",
        "Divide per row, keep only the rows whose count is above 0, then average those; a group with no such row "
        "has no mean at all (NaN), not a mean of 0."),
       "lib.exercises.graphs:reference_group_means"),
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
