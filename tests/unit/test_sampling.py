"""The C sampler chain that `build_chain` makes, checked against llama.cpp's own definitions.

No model is loaded: each chain is applied to hand-made logits (`llama_sampler_apply`), and what
survives (ids, logits, probabilities, the selected token) is compared with what llama.cpp's
samplers are defined to do. The chain's makeup is read back with llama_sampler_chain_n / _get /
llama_sampler_name.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence

import llama_cpp.llama_cpp as C
import pytest

from pollama.engine.sampling import SamplingParams, build_chain, generation_params

N_CTX = 64


def chain_for(n_vocab: int = 8, history: Sequence[int] = (), **options):
    return build_chain(SamplingParams(**options), vocab=None, n_vocab=n_vocab, num_ctx=N_CTX,
                       history=history)


def names(chain) -> list[str]:
    n = C.llama_sampler_chain_n(chain.sampler)
    return [C.llama_sampler_name(C.llama_sampler_chain_get(chain.sampler, i)).decode()
            for i in range(n)]


def apply(chain, logits: Sequence[float]) -> tuple[dict[int, tuple[float, float]], int]:
    """Run the chain over `logits` (token i has logits[i]): {id: (logit, p)} of the candidates
    left, and the selected token id (-1 if none was selected)."""
    arr = (C.llama_token_data * len(logits))()
    for i, logit in enumerate(logits):
        arr[i].id, arr[i].logit, arr[i].p = i, logit, 0.0
    cur = C.llama_token_data_array(data=arr, size=len(logits), selected=-1, sorted=False)
    C.llama_sampler_apply(chain.sampler, ctypes.byref(cur))
    left = {cur.data[i].id: (cur.data[i].logit, cur.data[i].p) for i in range(cur.size)}
    selected = cur.data[cur.selected].id if cur.selected >= 0 else -1
    return left, selected


def sample(chain, logits: Sequence[float]) -> int:
    """One sampling step as the runner takes it: apply, then accept the selected token."""
    _, token = apply(chain, logits)
    C.llama_sampler_accept(chain.sampler, token)
    return token


def log_probs(probs: Sequence[float]) -> list[float]:
    return [math.log(p) for p in probs]


FOUR = log_probs([0.5, 0.3, 0.15, 0.05])  # softmax(FOUR) == those probabilities


# -- the chain's makeup ----------------------------------------------------------------------


@pytest.mark.parametrize(("options", "expected"), [
    ({}, ["top-k", "top-p", "temp", "dist"]),  # Ollama's defaults: top_k 40, top_p 0.9
    ({"top_k": 5, "typical_p": 0.5, "top_p": 0.8, "min_p": 0.1},
     ["top-k", "typical", "top-p", "min-p", "temp", "dist"]),
    ({"top_k": 0, "top_p": 1.0}, ["temp", "dist"]),  # neutral values leave their sampler out
    ({"temperature": 0}, ["greedy"]),
    ({"temperature": -1, "top_k": 3, "min_p": 0.5}, ["greedy"]),
    ({"temperature": 0, "repeat_penalty": 1.5}, ["penalties", "greedy"]),
    ({"presence_penalty": 0.5}, ["penalties", "top-k", "top-p", "temp", "dist"]),
    ({"frequency_penalty": 0.5}, ["penalties", "top-k", "top-p", "temp", "dist"]),
    ({"repeat_penalty": 1.5, "repeat_last_n": 0}, ["top-k", "top-p", "temp", "dist"]),
    ({"mirostat": 1}, ["temp", "mirostat"]),
    ({"mirostat": 2, "top_k": 5, "min_p": 0.5}, ["temp", "mirostat-v2"]),
    ({"mirostat": 2, "temperature": 0}, ["greedy"]),
])
def test_chain_makeup(options, expected):
    chain = chain_for(**options)
    try:
        assert names(chain) == expected
    finally:
        chain.close()


# -- each sampler's effect, as llama.cpp defines it -------------------------------------------


def test_top_k_keeps_the_k_most_likely():
    chain = chain_for(top_k=2, top_p=1.0, temperature=1.0, seed=1)
    left, selected = apply(chain, FOUR)
    chain.close()
    assert set(left) == {0, 1} and selected in left


def test_top_p_keeps_the_smallest_set_reaching_p():
    # 0.5 < 0.6 <= 0.5 + 0.3: the first two; 0.85 asks for the third as well
    for top_p, kept in ((0.6, {0, 1}), (0.85, {0, 1, 2}), (0.4, {0})):
        chain = chain_for(top_k=0, top_p=top_p, temperature=1.0, seed=1)
        left, _ = apply(chain, FOUR)
        chain.close()
        assert set(left) == kept, top_p


def test_min_p_keeps_tokens_at_least_min_p_times_the_best():
    for min_p, kept in ((0.5, {0, 1}), (0.25, {0, 1, 2}), (0.9, {0})):
        chain = chain_for(top_k=0, top_p=1.0, min_p=min_p, temperature=1.0, seed=1)
        left, _ = apply(chain, FOUR)
        chain.close()
        assert set(left) == kept, min_p


def test_typical_p_keeps_the_tokens_nearest_the_entropy():
    probs = [0.5, 0.3, 0.15, 0.05]
    entropy = -sum(p * math.log(p) for p in probs)
    by_typicality = sorted(range(4), key=lambda i: abs(-math.log(probs[i]) - entropy))
    assert by_typicality[0] == 1  # not the most likely token
    for typical_p in (0.2, 0.5, 0.9):
        expected, mass = set(), 0.0
        for i in by_typicality:
            expected.add(i)
            mass += probs[i]
            if mass > typical_p:
                break
        chain = chain_for(top_k=0, top_p=1.0, typical_p=typical_p, temperature=1.0, seed=1)
        left, _ = apply(chain, FOUR)
        chain.close()
        assert set(left) == expected, typical_p
    assert expected == {1, 0, 2}  # 0.9 needed three of them


def test_temperature_divides_the_logits():
    for temperature in (0.5, 2.0):
        chain = chain_for(top_k=0, top_p=1.0, temperature=temperature, seed=1)
        left, _ = apply(chain, FOUR)
        chain.close()
        scaled = [logit / temperature for logit in FOUR]
        total = sum(math.exp(s) for s in scaled)
        for i in range(4):
            assert left[i][0] == pytest.approx(scaled[i], abs=1e-5)
            assert left[i][1] == pytest.approx(math.exp(scaled[i]) / total, abs=1e-5)


def test_greedy_picks_the_best_whatever_the_seed():
    logits = [0.1, 2.0, 1.9, -1.0, 1.99]
    for seed in (1, 2, 3):
        chain = chain_for(temperature=0, seed=seed)
        assert [sample(chain, logits) for _ in range(5)] == [1] * 5
        chain.close()


def draws(seed: int, n: int = 24) -> list[int]:
    chain = chain_for(n_vocab=100, top_k=0, top_p=1.0, temperature=1.0, seed=seed)
    try:
        return [sample(chain, [0.0] * 100) for _ in range(n)]
    finally:
        chain.close()


def test_seed_fixes_the_draws():
    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert draws(-1) != draws(-1)  # a negative seed asks llama.cpp for a random one
    assert SamplingParams(seed=-5).seed_u32 == C.LLAMA_DEFAULT_SEED
    assert SamplingParams(seed=2**32 + 7).seed_u32 == 7


def penalised(history: Sequence[int], logits: Sequence[float], **options) -> list[float]:
    chain = chain_for(n_vocab=len(logits), history=history, temperature=0, **options)
    left, _ = apply(chain, logits)
    chain.close()
    return [left[i][0] for i in range(len(logits))]


LOGITS = [1.0, 2.0, -2.0, 0.5, 0.0, 3.0, 1.0, 1.0]


def test_repeat_penalty_divides_positive_and_multiplies_negative_logits():
    # tokens 1, 2 and 5 were seen: 2.0 / 2, -2.0 * 2, 3.0 / 2; the rest are untouched
    assert penalised([1, 1, 2, 5], LOGITS, repeat_penalty=2.0) == pytest.approx(
        [1.0, 1.0, -4.0, 0.5, 0.0, 1.5, 1.0, 1.0])


def test_frequency_penalty_counts_and_presence_penalty_does_not():
    # token 1 was seen twice, 2 and 5 once: frequency subtracts count x 0.25, presence 0.5
    assert penalised([1, 1, 2, 5], LOGITS, frequency_penalty=0.25) == pytest.approx(
        [1.0, 1.5, -2.25, 0.5, 0.0, 2.75, 1.0, 1.0])
    assert penalised([1, 1, 2, 5], LOGITS, presence_penalty=0.5) == pytest.approx(
        [1.0, 1.5, -2.5, 0.5, 0.0, 2.5, 1.0, 1.0])
    assert penalised([1, 1, 2, 5], LOGITS, repeat_penalty=2.0, frequency_penalty=0.25,
                     presence_penalty=0.5) == pytest.approx(
        [1.0, 0.0, -4.75, 0.5, 0.0, 0.75, 1.0, 1.0])


def test_repeat_last_n_is_the_window():
    history = [5] + [7] * 70 + [1, 2]
    # the last 3 tokens: 7, 1, 2 (5 is too far back)
    assert penalised(history, LOGITS, repeat_penalty=2.0, repeat_last_n=3) == pytest.approx(
        [1.0, 1.0, -4.0, 0.5, 0.0, 3.0, 1.0, 0.5])
    # the default 64 still misses token 5, 73 tokens back; -1 means num_ctx (64 here) too
    assert penalised(history, LOGITS, repeat_penalty=2.0)[5] == 3.0
    longer = [5] + [7] * 40 + [1, 2]
    assert penalised(longer, LOGITS, repeat_penalty=2.0, repeat_last_n=-1)[5] == 1.5
    assert penalised(longer, LOGITS, repeat_penalty=2.0, repeat_last_n=16)[5] == 3.0
    assert penalised(longer, LOGITS, repeat_penalty=2.0, repeat_last_n=0) == LOGITS


@pytest.mark.parametrize(("last_n", "picks"), [
    (64, [1, 2, 0, 1, 1]),  # all three seen: 2.0 / 4 is still the best
    (2, [1, 2, 0, 1, 2]),  # only the last two picks are penalised
    (1, [1, 2, 1, 2, 1]),
])
def test_penalties_follow_the_generated_tokens(last_n, picks):
    chain = chain_for(temperature=0, repeat_penalty=4.0, repeat_last_n=last_n)
    logits = [1.0, 2.0, 1.5, 0.0]
    assert [sample(chain, logits) for _ in range(5)] == picks
    chain.close()


def mirostat_v2_kept(logits: Sequence[float], mu: float) -> tuple[list[float], int]:
    """llama.cpp's mirostat 2.0 truncation: the probabilities, and how many tokens have a
    surprise (-log2 p) of at most mu (at least one)."""
    peak = max(logits)
    weights = [math.exp(logit - peak) for logit in logits]
    probs = sorted((w / sum(weights) for w in weights), reverse=True)
    return probs, max(1, sum(1 for p in probs if -math.log2(p) <= mu))


def test_mirostat_v2_follows_tau_and_eta():
    logits = [-0.5 * i for i in range(40)]
    for tau, eta in ((3.0, 0.1), (3.0, 1.0), (1.5, 0.5)):
        chain = chain_for(n_vocab=40, mirostat=2, mirostat_tau=tau, mirostat_eta=eta,
                          temperature=1.0, seed=3)
        mu = 2 * tau  # llama.cpp starts mu at twice the target surprise
        for _ in range(4):
            probs, n = mirostat_v2_kept(logits, mu)
            left, token = apply(chain, logits)
            C.llama_sampler_accept(chain.sampler, token)
            assert len(left) == n, (tau, eta, mu)
            kept = sum(probs[:n])
            surprise = -math.log2(probs[token] / kept)  # token i is the i-th most likely
            mu -= eta * (surprise - tau)
        chain.close()


def test_mirostat_v1_follows_tau_and_eta():
    logits = [-0.5 * i for i in range(40)]

    def kept_sizes(tau: float, eta: float) -> list[int]:
        chain = chain_for(n_vocab=40, mirostat=1, mirostat_tau=tau, mirostat_eta=eta,
                          temperature=1.0, seed=3)
        sizes = []
        for _ in range(3):
            left, token = apply(chain, logits)
            C.llama_sampler_accept(chain.sampler, token)
            sizes.append(len(left))
        chain.close()
        return sizes

    base = kept_sizes(3.0, 0.1)
    assert kept_sizes(3.0, 0.1) == base
    assert kept_sizes(1.0, 0.1)[0] < base[0]  # a lower target surprise keeps fewer tokens
    eta = kept_sizes(3.0, 1.0)
    assert eta[0] == base[0] and eta[1:] != base[1:]  # eta only acts once mu has moved


# -- options → parameters ---------------------------------------------------------------------


def test_from_options_takes_the_sampling_keys():
    params = SamplingParams.from_options({
        "temperature": 0.5, "top_k": 7.9, "top_p": 0.5, "typical_p": 0.7,
        "repeat_last_n": 16, "repeat_penalty": 1.3, "presence_penalty": 0.2,
        "frequency_penalty": 0.4, "seed": 9, "num_ctx": 2048, "stop": ["x"], "top_p_x": 1,
        "min_p": None})
    assert params == SamplingParams(temperature=0.5, top_k=7, top_p=0.5, typical_p=0.7,
                                    repeat_last_n=16, repeat_penalty=1.3,
                                    presence_penalty=0.2, frequency_penalty=0.4, seed=9)
    with pytest.raises(ValueError, match="option 'top_k' must be a number"):
        SamplingParams.from_options({"top_k": "many"})


def test_generation_params_stop_seed_and_num_keep():
    params = generation_params({"options": {"stop": ["a", ""], "seed": 1, "num_keep": 9},
                                "seed": 2}, num_ctx=128)
    assert params.stop == ("a",) and params.sampling.seed == 2 and params.num_keep == 9
    assert generation_params({"options": {"stop": "b"}}, 128).stop == ("b",)
    assert generation_params({"options": {}}, 128).num_keep == 4
    with pytest.raises(ValueError, match='option "stop" must be of type array'):
        generation_params({"options": {"stop": [1]}}, 128)
