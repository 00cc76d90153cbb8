"""Every option a generation samples with (GF-01, GF-02, OPT-08…OPT-22), through the API.

A real `pollama serve` and the real SmolLM2; each test sets one option to a non-default value
and shows that it acts as llama.cpp defines it, against a control that would fail the same
assertion. Sampled tokens are checked against the raw logprobs the API returns with them
(`top_logprobs`: the 20 most likely tokens before any sampler ran), so a truncating sampler
(top_k, top_p, min_p) is seen to keep exactly what it should. Greedy answers and fixed seeds
make every outcome reproducible. Answers are 12 tokens or fewer.

Ollama no longer has mirostat, mirostat_tau, mirostat_eta, penalize_newline or tfs_z: an API
request that sets them is answered as if it had not, with a warning in the log (OPT-22).
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from tests.helpers import Server

# SmolLM2 at temperature 0 repeats this sentence for as long as it is let.
CYCLE = "The cat. The cat. The cat. The cat."
STORY = "Once upon a time"
WILD = {"temperature": 1.5, "top_k": 0, "top_p": 1.0}  # every token of the vocabulary can come
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def server():
    """This module's server, its runners' OpenMP threads sleeping at barriers instead of
    spinning: on a busy 2-core machine a spinning thread burns whole time slices waiting for a
    partner that is not running, and a token takes a second instead of 10-30 ms."""
    srv = Server(extra_env={"OMP_WAIT_POLICY": "PASSIVE"}).start()
    yield srv
    srv.cleanup()


def generate(server, model: str, prompt: str, *, template: str | None = None,
             top_logprobs: int = 0, **options: Any) -> dict[str, Any]:
    """A non-streamed /api/generate; `raw` unless a template is given (raw has no context)."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": False,
                            "options": {"num_predict": 12, **options}}
    if template is None:
        body["raw"] = True
    else:
        body["template"] = template
    if top_logprobs:
        body.update(logprobs=True, top_logprobs=top_logprobs)
    r = httpx.post(f"{server.url}/api/generate", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def text(server, model: str, prompt: str, **options: Any) -> str:
    return generate(server, model, prompt, **options)["response"]


def steps(answer: dict[str, Any]) -> list[tuple[float, list[float]]]:
    """Each sampled token's raw logprob, with the 20 best raw logprobs of its step."""
    out = [(lp["logprob"], [t["logprob"] for t in lp["top_logprobs"]])
           for lp in answer["logprobs"]]
    assert len(out) == answer["eval_count"] > 0
    return out


def rank(chosen: float, top: list[float]) -> int:
    """How many tokens were more likely than the one sampled (20 when it was not in the top)."""
    return sum(1 for logprob in top if logprob > chosen)


def sampled(server, model: str, **options: Any) -> list[tuple[float, list[float]]]:
    """The steps of one answer per seed in SEEDS, all together."""
    return [step for seed in SEEDS for step in steps(generate(
        server, model, STORY, top_logprobs=20, seed=seed, **options))]


# -- temperature, seed -------------------------------------------------------------------------


def test_temperature_zero_is_greedy_and_ignores_the_seed(server, smol):
    answers = [generate(server, smol, STORY, temperature=0, seed=seed, top_logprobs=20)
               for seed in SEEDS]
    assert len({a["response"] for a in answers}) == 1
    assert all(rank(*step) == 0 for a in answers for step in steps(a))
    # the control: at 1.5 the seed decides, and less likely tokens get picked
    hot = [generate(server, smol, STORY, seed=seed, top_logprobs=20, **WILD) for seed in SEEDS]
    assert len({a["response"] for a in hot}) == len(SEEDS)
    assert any(rank(*step) > 0 for a in hot for step in steps(a))


def test_temperature_scales_the_logits(server, smol):
    """At 0.05 a token half a nat less likely than the best is e^-10 times as likely to come;
    at 1.5 such tokens come often."""
    assert all(top[0] - chosen < 0.5
               for chosen, top in sampled(server, smol, **{**WILD, "temperature": 0.05}))
    assert any(top[0] - chosen > 0.5 for chosen, top in sampled(server, smol, **WILD))


def test_seed_repeats_a_sampled_answer(server, smol):
    first = [text(server, smol, STORY, seed=seed, **WILD) for seed in SEEDS]
    again = [text(server, smol, STORY, seed=seed, **WILD) for seed in SEEDS]
    assert first == again
    assert len(set(first)) == len(SEEDS)
    # no seed (-1): a random one each time
    assert text(server, smol, STORY, **WILD) != text(server, smol, STORY, **WILD)


# -- truncating samplers: what each keeps, read from the raw logprobs ------------------------


def test_top_k(server, smol):
    greedy = text(server, smol, STORY, temperature=0)
    assert all(text(server, smol, STORY, seed=seed, **{**WILD, "top_k": 1}) == greedy
               for seed in SEEDS)
    assert text(server, smol, STORY, seed=1, **{**WILD, "top_k": 1.9}) == greedy  # GF-01: int
    assert all(rank(*step) < 3 for step in sampled(server, smol, **{**WILD, "top_k": 3}))
    assert any(rank(*step) >= 3 for step in sampled(server, smol, **WILD))


def above(chosen: float, top: list[float]) -> float:
    """The probability of the tokens more likely than the one sampled."""
    return sum(math.exp(logprob) for logprob in top if logprob > chosen)


def test_top_p(server, smol):
    """top_p keeps the most likely tokens until their mass reaches p: a token is kept when the
    tokens before it hold less than p."""
    greedy = text(server, smol, STORY, temperature=0)
    assert text(server, smol, STORY, seed=1, **{**WILD, "top_p": 0.01}) == greedy
    assert all(above(*step) < 0.5 + 1e-4
               for step in sampled(server, smol, **{**WILD, "top_p": 0.5}))
    assert any(above(*step) > 0.5 for step in sampled(server, smol, **WILD))


def test_min_p(server, smol):
    """min_p keeps the tokens at least min_p times as likely as the most likely one."""
    greedy = text(server, smol, STORY, temperature=0)
    assert text(server, smol, STORY, seed=1, **{**WILD, "min_p": 1.0}) == greedy
    floor = math.log(0.3)
    assert all(chosen >= top[0] + floor - 1e-4
               for chosen, top in sampled(server, smol, **{**WILD, "min_p": 0.3}))
    assert any(chosen < top[0] + floor for chosen, top in sampled(server, smol, **WILD))


def test_typical_p(server, smol):
    """Locally typical sampling keeps the tokens whose surprise is nearest the entropy, until
    their mass passes p: with a tiny p one token is left, so the seed no longer matters."""
    narrow = {**WILD, "typical_p": 1e-6}
    answers = {text(server, smol, STORY, seed=seed, **narrow) for seed in SEEDS}
    assert len(answers) == 1
    wide = {text(server, smol, STORY, seed=seed, **WILD) for seed in SEEDS}
    assert len(wide) == len(SEEDS)


# -- penalties ---------------------------------------------------------------------------------


@pytest.mark.parametrize("penalty", [{"repeat_penalty": 2.0}, {"repeat_penalty": 1.1},
                                     {"presence_penalty": 1.0}, {"frequency_penalty": 0.5}])
def test_penalties_break_a_greedy_loop(server, smol, penalty):
    loop = text(server, smol, CYCLE, temperature=0)
    assert loop.count("The cat.") >= 3
    answer = generate(server, smol, CYCLE, temperature=0, **penalty)
    assert answer["done_reason"] == "length"  # not an error, nor an early stop
    assert "The cat." not in answer["response"]
    # repeat_last_n 0 turns every penalty off
    assert text(server, smol, CYCLE, temperature=0, repeat_last_n=0, **penalty) == loop


def test_repeat_last_n_is_the_window(server, smol):
    """" The cat." is three tokens: a window of two never holds the " The" that comes next."""
    loop = text(server, smol, CYCLE, temperature=0)
    assert text(server, smol, CYCLE, temperature=0, repeat_penalty=2.0, repeat_last_n=2) == loop
    assert text(server, smol, CYCLE, temperature=0, repeat_penalty=2.0, repeat_last_n=3) != loop
    for last_n in (64, -1):  # -1 = num_ctx
        answer = text(server, smol, CYCLE, temperature=0, repeat_penalty=2.0,
                      repeat_last_n=last_n)
        assert "The cat." not in answer, last_n


def test_penalties_from_the_model_and_request_precedence(server, smol):
    """OPT-21: a PARAMETER of the model applies; the request's own value wins over it."""
    client = server.client()
    client.create(model="smol-penalised", from_=smol, parameters={"repeat_penalty": 2.0})
    by_model = text(server, "smol-penalised", CYCLE, temperature=0)
    assert by_model == text(server, smol, CYCLE, temperature=0, repeat_penalty=2.0)
    assert text(server, "smol-penalised", CYCLE, temperature=0, repeat_penalty=1.0) == text(
        server, smol, CYCLE, temperature=0)


# -- length, stop, num_keep --------------------------------------------------------------------


def test_num_predict(server, smol):
    short = generate(server, smol, CYCLE, temperature=0, num_predict=5)
    longer = generate(server, smol, CYCLE, temperature=0, num_predict=12)
    assert (short["eval_count"], short["done_reason"]) == (5, "length")
    assert (longer["eval_count"], longer["done_reason"]) == (12, "length")
    assert longer["response"].startswith(short["response"]) and short["response"]


def test_stop(server, smol):
    free = generate(server, smol, STORY, temperature=0)
    words = free["response"].split()
    assert len(words) >= 6
    for stop in ([words[3]], [words[5], words[3]]):  # the first one in the text wins
        cut = generate(server, smol, STORY, temperature=0, stop=stop)
        assert cut["done_reason"] == "stop"
        assert cut["response"] == free["response"][:free["response"].find(words[3])]
        assert cut["eval_count"] < free["eval_count"]


def test_num_keep_is_what_truncation_keeps(server, smol):
    """A prompt longer than num_ctx keeps its first num_keep tokens and the newest ones, as
    many as Ollama's contextShiftPromptLimit allows (num_ctx - (num_ctx - keep) / 2)."""
    prompt = "Numbers: " + ", ".join(str(i) for i in range(150))
    full = generate(server, smol, prompt, template="{{ .Prompt }}", temperature=0,
                    num_predict=1)
    tokens = full["context"][:full["prompt_eval_count"]]
    assert len(tokens) > 256
    for keep in (4, 40):
        cut = generate(server, smol, prompt, template="{{ .Prompt }}", temperature=0,
                       num_predict=1, num_ctx=128, num_keep=keep)
        n = cut["prompt_eval_count"]
        assert n == 128 - (128 - keep) // 2
        assert cut["context"][:n] == tokens[:keep] + tokens[len(tokens) - (n - keep):]


# -- options Ollama dropped (OPT-22) -----------------------------------------------------------


def test_legacy_sampling_options_are_ignored_with_a_warning(server, smol):
    plain = text(server, smol, STORY, seed=5, **WILD)
    legacy = {"mirostat": 2, "mirostat_tau": 0.1, "mirostat_eta": 1.0, "penalize_newline": True,
              "tfs_z": 0.5}
    assert text(server, smol, STORY, seed=5, **WILD, **legacy) == plain
    for name in legacy:
        assert f"invalid option provided option={name}" in server.log()

