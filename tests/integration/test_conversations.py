"""Conversations kept by the server, end to end: a real `pollama serve`, the real SmolLM2 model,
HTTP (httpx), the OpenAI SDK, the CLI and the REPL in tmux. No timing assertions."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server, create_from_gguf

SHORT = {"temperature": 0, "seed": 7, "num_predict": 8}


def post(server: Server, path: str, body: dict, timeout: float = 120) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=timeout)


def chat_stream(server: Server, body: dict) -> list[dict]:
    """A streamed /api/chat, every object it sent."""
    with httpx.stream("POST", server.url + "/api/chat", json=body, timeout=120) as r:
        assert r.status_code == 200, r.read()
        return [json.loads(line) for line in r.iter_lines() if line.strip()]


def new_conversation(server: Server, model: str, **fields) -> dict:
    r = post(server, "/api/conversations", {"model": model, **fields})
    assert r.status_code == 200, r.text
    return r.json()


def conversation(server: Server, ref: str) -> dict:
    r = httpx.get(f"{server.url}/api/conversations/{ref}")
    assert r.status_code == 200, r.text
    return r.json()


# -- CRUD, listing, search ----------------------------------------------------------------


def test_create_get_patch_delete_and_errors(server, smol):
    made = new_conversation(server, smol, title="Trip plans", system="Be brief.",
                            options={"temperature": 0.2})
    assert set(made) == {"id", "model", "title", "system", "options", "created_at",
                         "updated_at"}
    assert (made["model"], made["title"], made["system"], made["options"]) == \
        (smol, "Trip plans", "Be brief.", {"temperature": 0.2})
    got = conversation(server, made["id"])
    assert got["messages"] == [] and got["title"] == "Trip plans"

    r = httpx.patch(f"{server.url}/api/conversations/{made['id']}",
                    json={"title": "Holiday", "options": {"num_predict": 4}})
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["title"] == "Holiday" and patched["options"] == {"num_predict": 4}
    assert patched["system"] == "Be brief." and patched["updated_at"] > made["updated_at"]

    def error(r: httpx.Response, status: int) -> str:
        assert r.status_code == status, r.text
        return r.json()["error"]

    url = f"{server.url}/api/conversations"
    assert error(httpx.get(f"{url}/nope"), 404) == "conversation 'nope' not found"
    assert error(httpx.patch(f"{url}/nope", json={"title": "x"}), 404)
    assert error(httpx.delete(f"{url}/nope"), 404)
    assert "model 'missing:1b' not found" in error(post(server, "/api/conversations",
                                                        {"model": "missing:1b"}), 404)
    assert error(post(server, "/api/conversations", {}), 400) == "model is required"
    assert error(post(server, "/api/conversations", {"model": smol, "colour": "red"}),
                 400) == 'json: unknown field "colour"'
    assert "options" in error(post(server, "/api/conversations", {"model": smol, "options": 3}),
                              400)
    assert error(post(server, "/api/conversations",
                      {"model": smol, "options": {"temperature": "hot"}}), 400)
    assert error(post(server, "/api/conversations", {"model": smol, "options": {"tempo": 1}}),
                 400) == 'unknown option "tempo"'
    assert error(httpx.patch(f"{url}/{made['id']}", json={}), 400).startswith("nothing to")
    assert error(httpx.patch(f"{url}/{made['id']}", json={"model": "x"}), 400)
    assert error(httpx.get(f"{url}?limit=0"), 400)

    named = new_conversation(server, smol, name="the-named-one")
    assert conversation(server, "the-named-one")["id"] == named["id"]
    assert error(post(server, "/api/conversations", {"model": smol, "name": "the-named-one"}),
                 409) == "a conversation named 'the-named-one' already exists"

    assert httpx.delete(f"{url}/{made['id']}").status_code == 200
    assert error(httpx.get(f"{url}/{made['id']}"), 404)
    assert httpx.delete(f"{url}/the-named-one").status_code == 200


def test_list_newest_first_pages_and_searches_titles(server, smol):
    made = [new_conversation(server, smol, title=f"Zebra notebook {i}") for i in range(3)]
    r = httpx.get(f"{server.url}/api/conversations", params={"q": "zebra", "limit": 2})
    assert r.status_code == 200
    page = r.json()
    assert [c["id"] for c in page["conversations"]] == [made[2]["id"], made[1]["id"]]
    assert page["has_more"] is True and page["conversations"][0]["message_count"] == 0
    r = httpx.get(f"{server.url}/api/conversations",
                  params={"q": "zebra", "limit": 2, "offset": 2})
    assert [c["id"] for c in r.json()["conversations"]] == [made[0]["id"]]
    assert r.json()["has_more"] is False
    r = httpx.get(f"{server.url}/api/conversations", params={"q": "zebra notebook 1"})
    assert [c["id"] for c in r.json()["conversations"]] == [made[1]["id"]]
    r = httpx.get(f"{server.url}/api/conversations", params={"q": "zebra giraffe"})
    assert r.json()["conversations"] == []
    everything = httpx.get(f"{server.url}/api/conversations", params={"limit": 1000}).json()
    ids = [c["id"] for c in everything["conversations"]]
    assert ids.index(made[2]["id"]) < ids.index(made[1]["id"]) < ids.index(made[0]["id"])


# -- chat with a conversation -------------------------------------------------------------


def test_chat_turns_are_stored_and_answered_from_the_stored_history(server, smol):
    system = "You are a helpful assistant. Answer in one short sentence."
    conv = new_conversation(server, smol, system=system, options=SHORT)
    first = chat_stream(server, {"conversation": conv["id"], "messages": [
        {"role": "user", "content": "My favourite animal is the narwhal."}]})
    done = first[-1]
    assert done["done"] is True and done["model"] == smol  # the conversation's model
    answer1 = "".join(c["message"]["content"] for c in first)
    assert answer1

    stored = conversation(server, conv["id"])
    assert stored["title"] == "My favourite animal is the narwhal."
    user, assistant = stored["messages"]
    assert (user["role"], user["content"]) == ("user", "My favourite animal is the narwhal.")
    assert (assistant["role"], assistant["content"]) == ("assistant", answer1)
    assert assistant["eval_count"] == done["eval_count"]
    assert assistant["prompt_eval_count"] == done["prompt_eval_count"]
    assert assistant["done_reason"] == done["done_reason"] and assistant["model"] == smol
    assert user["created_at"] <= assistant["created_at"]

    # Turn two, not streamed: the same answer as a stateless chat sent the whole history.
    question = {"role": "user", "content": "What is my favourite animal?"}
    r = post(server, "/api/chat", {"conversation": conv["id"], "messages": [question],
                                   "stream": False})
    assert r.status_code == 200, r.text
    answer2 = r.json()["message"]["content"]
    stateless = post(server, "/api/chat", {"model": smol, "stream": False, "options": SHORT,
                                           "messages": [{"role": "system", "content": system},
                                                        {"role": "user",
                                                         "content": user["content"]},
                                                        {"role": "assistant",
                                                         "content": answer1},
                                                        question]}).json()
    assert answer2 == stateless["message"]["content"]
    messages = conversation(server, conv["id"])["messages"]
    assert [(m["role"], m["content"]) for m in messages[2:]] == \
        [("user", question["content"]), ("assistant", answer2)]

    # Request options go over the conversation's; the search finds message contents.
    r = post(server, "/api/chat", {"conversation": conv["id"], "stream": False,
                                   "messages": [{"role": "user", "content": "Say hi."}],
                                   "options": {"num_predict": 2}})
    assert r.json()["eval_count"] <= 2
    found = httpx.get(f"{server.url}/api/conversations", params={"q": "narwhal"}).json()
    assert [c["id"] for c in found["conversations"]] == [conv["id"]]
    assert found["conversations"][0]["message_count"] == 6


def test_chat_with_conversation_errors_keep_the_history(server, smol):
    conv = new_conversation(server, smol, options=SHORT)

    def refused(body: dict, status: int) -> str:
        r = post(server, "/api/chat", {"conversation": conv["id"], **body})
        assert r.status_code == status, r.text
        return r.json()["error"]

    hello = [{"role": "user", "content": "hello"}]
    assert refused({"messages": hello, "conversation": "nope"}, 404) == \
        "conversation 'nope' not found"
    assert refused({"messages": []}, 400).startswith("messages are required")
    assert "system prompt" in refused({"messages": [{"role": "system", "content": "x"}]}, 400)
    assert refused({"messages": hello, "options": {"temperature": "hot"}}, 400)
    assert refused({"messages": hello, "model": "missing:1b"}, 404)
    assert refused({"messages": [{"role": "user", "content": "x", "images": ["%%"]}]}, 400)
    assert conversation(server, conv["id"])["messages"] == []  # refused turns took theirs back
    # The model can be named per turn; it is stored with the answer.
    r = post(server, "/api/chat", {"conversation": conv["id"], "model": smol,
                                   "messages": hello, "stream": False})
    assert r.status_code == 200 and r.json()["model"] == smol
    assert [m["role"] for m in conversation(server, conv["id"])["messages"]] == \
        ["user", "assistant"]


def test_truncation_keeps_the_system_prompt_and_drops_the_oldest_turns(server, smol):
    conv = new_conversation(server, smol, system="SYSTEM-KEPT: you are terse.",
                            options={**SHORT, "num_predict": 2, "num_ctx": 512})
    filler = " ".join(["lorem ipsum dolor sit amet"] * 30)  # ~150+ tokens a turn
    for n in range(1, 5):
        r = post(server, "/api/chat", {"conversation": conv["id"], "stream": False,
                                       "messages": [{"role": "user",
                                                     "content": f"MARKER{n} {filler}"}]})
        assert r.status_code == 200, r.text
        assert r.json()["prompt_eval_count"] <= 512
    rendered = post(server, "/api/chat", {"conversation": conv["id"], "_debug_render_only": True,
                                          "stream": False,
                                          "messages": [{"role": "user", "content": "LAST"}]})
    assert rendered.status_code == 200, rendered.text
    prompt = rendered.json()["_debug_info"]["rendered_template"]
    assert prompt.index("SYSTEM-KEPT") < prompt.index("LAST")
    assert "MARKER1" not in prompt and "MARKER4" in prompt
    messages = conversation(server, conv["id"])["messages"]
    assert len(messages) == 8 and messages[0]["content"].startswith("MARKER1")  # all stored
    assert "LAST" not in json.dumps(messages)  # a render stores nothing


def test_concurrent_turns_on_one_conversation_are_serialized(server, smol):
    conv = new_conversation(server, smol, options={**SHORT, "num_predict": 16})
    results: dict[str, httpx.Response] = {}
    barrier = threading.Barrier(2)

    def turn(text: str) -> None:
        barrier.wait()
        results[text] = post(server, "/api/chat", {"conversation": conv["id"], "stream": False,
                                                   "messages": [{"role": "user",
                                                                 "content": text}]})

    threads = [threading.Thread(target=turn, args=(t,)) for t in ("Count to three.",
                                                                 "Name a colour.")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in results.values()), results
    messages = conversation(server, conv["id"])["messages"]
    # Each question is followed by its own answer: turns never interleave.
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    for question, answer in ((messages[0], messages[1]), (messages[2], messages[3])):
        assert answer["content"] == results[question["content"]].json()["message"]["content"]


def test_conversations_off(tmp_path):
    srv = Server(extra_env={"OLLAMA_CONVERSATIONS": "0"}).start()
    try:
        r = post(srv, "/api/conversations", {"model": "x"})
        assert r.status_code == 400 and "OLLAMA_CONVERSATIONS=0" in r.json()["error"]
        r = post(srv, "/api/chat", {"conversation": "x", "model": "x",
                                    "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400 and "OLLAMA_CONVERSATIONS=0" in r.json()["error"]
        assert not (srv.home / ".ollama" / "pollama.db").exists()
    finally:
        srv.cleanup()


# -- crashes, restarts, a full disk -------------------------------------------------------


class KillableServer(Server):
    """A server in a process group of its own, so a test can SIGKILL it (and its runners)."""

    new_session = True

    def kill9(self) -> None:
        """SIGKILL the server's process group and its runners (each in a session of its own)."""
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        os.killpg(pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
        self.process.wait()
        self._log.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def stateless_answer(server: Server, model: str, messages: list[dict], options: dict) -> str:
    r = post(server, "/api/chat", {"model": model, "stream": False, "options": options,
                                   "messages": messages})
    assert r.status_code == 200, r.text
    return r.json()["message"]["content"]


def test_kill_9_mid_answer_keeps_the_question_and_resumes_after_restart(smollm2_path):
    srv = KillableServer().start()
    try:
        create_from_gguf(srv, "smollm2:135m", smollm2_path)
        conv = new_conversation(srv, "smollm2:135m", options=SHORT)
        # A turn may bring earlier messages of its own (here a seeded answer) before its question.
        seed = [{"role": "user", "content": "Remember this: the secret word is PINEAPPLE."},
                {"role": "assistant",
                 "content": "I will remember that the secret word is PINEAPPLE."},
                {"role": "user", "content": "Good. Now say hello."}]
        first = post(srv, "/api/chat", {"conversation": conv["id"], "stream": False,
                                        "messages": seed})
        assert first.status_code == 200, first.text
        question = "Tell me a long story about me."
        with httpx.stream("POST", srv.url + "/api/chat", timeout=120, json={
                "conversation": conv["id"], "options": {"num_predict": 2000},
                "messages": [{"role": "user", "content": question}]}) as r:
            lines = r.iter_lines()
            for _ in range(3):  # the answer is streaming
                assert not json.loads(next(lines)).get("done")
            srv.kill9()
        db = srv.home / ".ollama" / "pollama.db"
        assert integrity(db) == "ok"
        srv.start()
        assert integrity(db) == "ok"
        messages = conversation(srv, conv["id"])["messages"]
        # The question was committed before the answer started; the cut answer is absent.
        assert [(m["role"], m["content"]) for m in messages] == [
            *[(m["role"], m["content"]) for m in seed],
            ("assistant", first.json()["message"]["content"]), ("user", question)]

        # Resumed after the restart, the prompt is the stored history plus the new message,
        # and the answer knows what only the stored history says.
        ask = {"role": "user", "content": "What is the secret word?"}
        history = [{"role": m["role"], "content": m["content"]} for m in messages]
        rendered = [post(srv, "/api/chat", {**body, "stream": False, "_debug_render_only": True}
                         ).json()["_debug_info"]["rendered_template"]
                    for body in ({"conversation": conv["id"], "messages": [ask]},
                                 {"model": "smollm2:135m", "messages": [*history, ask]})]
        assert rendered[0] == rendered[1]
        r = post(srv, "/api/chat", {"conversation": conv["id"], "stream": False,
                                    "messages": [ask], "options": {"num_predict": 16}})
        assert r.status_code == 200, r.text
        assert "PINEAPPLE" in r.json()["message"]["content"]
        assert len(conversation(srv, conv["id"])["messages"]) == 7
    finally:
        srv.cleanup()


def test_client_gone_mid_answer_stores_the_question_only(server, smol):
    conv = new_conversation(server, smol, options=SHORT)
    with httpx.stream("POST", server.url + "/api/chat", timeout=120, json={
            "conversation": conv["id"], "options": {"num_predict": 2000},
            "messages": [{"role": "user", "content": "Tell a long tale."}]}) as r:
        lines = r.iter_lines()
        for _ in range(3):
            assert not json.loads(next(lines)).get("done")
    # The next turn waits for the cancelled one to end, then answers after the question.
    r = post(server, "/api/chat", {"conversation": conv["id"], "stream": False,
                                   "messages": [{"role": "user", "content": "Hi again."}]})
    assert r.status_code == 200, r.text
    assert [(m["role"], m["content"]) for m in conversation(server, conv["id"])["messages"]] == [
        ("user", "Tell a long tale."), ("user", "Hi again."),
        ("assistant", r.json()["message"]["content"])]


def test_full_disk_is_a_clear_error_and_the_database_stays_intact(server, smol, small_disk):
    db = small_disk / "pollama.db"
    srv = Server(extra_env={"OLLAMA_CONVERSATIONS": str(db), "OLLAMA_NOPRUNE": "1",
                            "OLLAMA_MODELS": str(server.models)}).start()
    filler = small_disk / "filler"
    try:
        conv = new_conversation(srv, smol, options={**SHORT, "num_predict": 2})
        r = post(srv, "/api/chat", {"conversation": conv["id"], "stream": False,
                                    "messages": [{"role": "user", "content": "Hello."}]})
        assert r.status_code == 200, r.text
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        big = "word " * 300_000  # far more than the space left
        r = post(srv, "/api/chat", {"conversation": conv["id"],
                                    "messages": [{"role": "user", "content": big}]})
        assert r.status_code == 500
        assert "database or disk is full" in r.json()["error"]
        assert str(db) in r.json()["error"]
        assert len(conversation(srv, conv["id"])["messages"]) == 2  # readable, nothing added
        filler.unlink()
        assert integrity(db) == "ok"
        r = post(srv, "/api/chat", {"conversation": conv["id"], "stream": False,
                                    "messages": [{"role": "user", "content": "Still there?"}]})
        assert r.status_code == 200, r.text
        assert len(conversation(srv, conv["id"])["messages"]) == 4
    finally:
        srv.cleanup()


# -- /v1/responses stored -----------------------------------------------------------------


def test_responses_store_continue_retrieve_delete_with_the_openai_sdk(server, smol):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    seed = [{"role": "user", "content": "Remember this: the secret word is PINEAPPLE."},
            {"role": "assistant", "content": "I will remember that the secret word is "
             "PINEAPPLE."},
            {"role": "user", "content": "Good. Now say hello."}]
    first = client.responses.create(model=smol, input=seed, temperature=0,
                                    max_output_tokens=8, instructions="Be brief.")
    assert first.store is True and first.status == "completed"  # OpenAI's default
    got = client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text

    # Streamed, continuing the stored one: its input and output are the history.
    with client.responses.stream(model=smol, input="What is the secret word?", temperature=0,
                                 max_output_tokens=16, previous_response_id=first.id) as stream:
        list(stream)
        second = stream.get_final_response()
    assert "PINEAPPLE" in second.output_text
    assert second.previous_response_id == first.id and second.store is True
    assert client.responses.retrieve(second.id).output_text == second.output_text

    unstored = client.responses.create(model=smol, input="Hi", max_output_tokens=2, store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)

    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError, match="not found"):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError, match="Previous response with id"):
        client.responses.create(model=smol, input="x", previous_response_id=first.id)
    # A response continuing a deleted one keeps its own history.
    third = client.responses.create(model=smol, input="And again: the secret word?",
                                    temperature=0, max_output_tokens=16,
                                    previous_response_id=second.id)
    assert third.status == "completed" and third.previous_response_id == second.id


def test_responses_store_off(tmp_path):
    import openai

    srv = Server(extra_env={"OLLAMA_CONVERSATIONS": "off"}).start()
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x")
        with pytest.raises(openai.BadRequestError, match="set store to false"):
            client.responses.create(model="m", input="x", store=True)
        with pytest.raises(openai.BadRequestError, match="OLLAMA_CONVERSATIONS"):
            client.responses.create(model="m", input="x", previous_response_id="resp_1")
        with pytest.raises(openai.BadRequestError):
            client.responses.retrieve("resp_1")
    finally:
        srv.cleanup()


# -- the CLI ------------------------------------------------------------------------------


def test_cli_conversations_ls_show_export_rm(server, smol):
    conv = new_conversation(server, smol, name="cli-walrus", system="Be brief.",
                            options={**SHORT, "num_predict": 4})
    r = post(server, "/api/chat", {"conversation": "cli-walrus", "stream": False,
                                   "messages": [{"role": "user",
                                                 "content": "Walruses have tusks."}]})
    answer = r.json()["message"]["content"]

    listed = server.cli("conversations", "ls", "--search", "walrus")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "TITLE", "MODEL", "MESSAGES", "UPDATED"]
    assert row.startswith(conv["id"][:12]) and "cli-walrus" in row and smol in row
    assert "Walruses have tusks." in row

    shown = server.cli("conversations", "show", "cli-walrus")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f">>> Walruses have tusks.\n{answer}\n\n"

    exported = server.cli("conversations", "export", conv["id"])
    data = json.loads(exported.stdout)
    assert data["id"] == conv["id"] and [m["role"] for m in data["messages"]] == \
        ["user", "assistant"]
    md = server.cli("conversations", "export", "cli-walrus", "--format", "md").stdout
    assert md.startswith("# Walruses have tusks.\n") and "## system\n\nBe brief." in md
    assert "## user (" in md and f"\n{answer}\n" in md
    bad = server.cli("conversations", "export", "cli-walrus", "--format", "xml")
    assert bad.returncode == 1 and "unknown format 'xml'" in bad.stderr

    # One-shot `run --conversation`: the prompt is the conversation's next turn.
    once = server.cli("run", smol, "--conversation", "cli-walrus", "What has tusks?")
    assert once.returncode == 0, once.stderr
    messages = conversation(server, "cli-walrus")["messages"]
    assert messages[2]["content"] == "What has tusks?"
    assert messages[3]["content"].strip() == once.stdout.strip()

    removed = server.cli("conversations", "rm", "cli-walrus")
    assert removed.returncode == 0 and removed.stdout == "deleted 'cli-walrus'\n"
    missing = server.cli("conversations", "show", "cli-walrus")
    assert missing.returncode == 1 and "conversation 'cli-walrus' not found" in missing.stderr


@pytest.mark.skipif(not __import__("shutil").which("tmux"), reason="tmux is not installed")
def test_run_with_conversation_in_a_terminal_resumes_with_history(server, smol):
    from tests.integration.test_repl import Term

    server.client().create(model="smol-conv", from_=smol,
                           parameters={"num_predict": 8, "temperature": 0})
    first = Term(server, "smol-conv", "--conversation", "tmux-chat")
    try:
        first.ready()
        answer = first.enter("Otters hold hands.")
        assert answer
        stored = conversation(server, "tmux-chat")
        assert [(m["role"], m["content"]) for m in stored["messages"]] == \
            [("user", "Otters hold hands."), ("assistant", answer)]
        first.type("/bye")
        first.keys("Enter")
        first.exited()
    finally:
        first.close()

    again = Term(server, "smol-conv", "--conversation", "tmux-chat")
    try:
        screen = again.ready()
        assert ">>> Otters hold hands." in screen and answer in screen  # the history, shown
        second = again.enter("What do otters hold?")
        assert second
        assert [m["content"] for m in conversation(server, "tmux-chat")["messages"]][2:] == \
            ["What do otters hold?", second]
        listed = again.enter("/conversations")
        assert "tmux-chat" in listed and "Otters hold hands." in listed
        other = new_conversation(server, smol, name="tmux-other")
        post(server, "/api/chat", {"conversation": other["id"], "stream": False,
                                   "options": SHORT,
                                   "messages": [{"role": "user", "content": "Bees buzz."}]})
        again.enter("/resume tmux-other")
        lines = again.lines()
        at = max(i for i, line in enumerate(lines) if line == ">>> /resume tmux-other")
        assert lines[at + 1] == ">>> Bees buzz."  # its history, then the notice
        assert "Resumed conversation 'tmux-other'" in lines[at + 2:]
        again.enter("Tell me more.")
        assert [m["content"] for m in conversation(server, "tmux-other")["messages"]][2] == \
            "Tell me more."
        assert again.enter("/resume nope") == "Couldn't find conversation 'nope'"
    finally:
        again.close()
