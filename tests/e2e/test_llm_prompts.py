"""Promotion prompts written by a configured LLM: a `memsy serve` of its own
whose `llm.url` points at a small local HTTP server playing an
OpenAI-compatible chat-completions provider. The tokens it reports are the
org's `llm_tokens`; when the provider fails, records still get the template
prompt and `prompt_meta` says why."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from memsy import MemsyClient, MemsyControlClient
from memsy.exceptions import MemsyAPIError

from conftest import memsy_stack


class FakeLLM:
    def __init__(self):
        self.requests: list[dict] = []
        self.fail = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if owner.fail:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "model crashed"}}')
                    return
                user = body["messages"][1]["content"]
                name = next(line[len("Name: "):] for line in user.splitlines() if line.startswith("Name: "))
                answer = {
                    "model": "fake-model-1",
                    "choices": [{"index": 0, "message": {"role": "assistant",
                                 "content": json.dumps({"prompt": f"LLM prompt for {name}: promote shared runbooks."})}}],
                    "usage": {"prompt_tokens": 200, "completion_tokens": 40},
                }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"


@pytest.fixture(scope="module")
def llm_server():
    fake = FakeLLM()
    env = {"MEMSY__LLM__URL": fake.url, "MEMSY__LLM__MODEL": "fake-model", "MEMSY__LLM__API_KEY": "sk-fake",
           "MEMSY__LLM__ATTEMPTS": "2"}
    with memsy_stack(env) as server:
        yield server, fake
    fake.httpd.shutdown()


def test_prompts_come_from_the_llm_and_its_tokens_are_metered(llm_server):
    server, fake = llm_server
    org = f"llm-{uuid.uuid4().hex[:8]}"
    key = server.create_key(org, scopes="read,write,admin")
    with MemsyClient(base_url=server.base_url, api_key=key) as client:
        role = client.roles.create(org, "SRE", "Incident response and on-call handovers")
        assert role.promotion_prompt == "LLM prompt for SRE: promote shared runbooks."
        meta = role.prompt_meta
        assert meta["source"] == "llm" and meta["model"] == "fake-model-1"
        assert meta["prompt_tokens"] == 200 and meta["completion_tokens"] == 40
        sent = fake.requests[-1]
        assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-fake"
        assert sent["body"]["model"] == "fake-model"
        assert "Incident response and on-call handovers" in sent["body"]["messages"][1]["content"]
        assert sent["body"]["response_format"]["type"] == "json_schema"

        renamed = client.roles.update(role.role_id, org, name="Site reliability")
        assert renamed.promotion_prompt == "LLM prompt for Site reliability: promote shared runbooks."

        # The provider fails: the record still gets a prompt, and says why.
        fake.fail = True
        team = client.teams.create(org, "Platform", "Build and deploy tooling")
        assert team.prompt_meta["source"] == "template"
        assert team.prompt_meta["llm_error"] == "the LLM could not be reached or kept failing"
        # The provider's own words (its URL, account, key) stay in the server log.
        assert "model crashed" not in json.dumps(team.prompt_meta) and "127.0.0.1" not in json.dumps(team.prompt_meta)
        assert "Platform" in team.promotion_prompt and "Build and deploy tooling" in team.promotion_prompt
        fake.fail = False
        again = client.teams.regenerate_prompt(team.team_id, org)
        assert again.prompt_meta["source"] == "llm"

    with MemsyControlClient(base_url=server.control_url, api_key=key) as c:
        used = {d.dimension: d.used for d in c.usage.summary().dimensions}
        assert used["llm_tokens"] == 3 * 240, used


def test_prompts_stop_spending_past_the_llm_tokens_quota(llm_server):
    """Plan `llm-metered` allows 300 tokens a month; each prompt costs 240."""
    server, fake = llm_server
    org = "llm-quota-org"
    key = server.create_key(org, scopes="read,write,admin")
    with MemsyClient(base_url=server.base_url, api_key=key, max_retries=0) as client:
        role = client.roles.create(org, "SRE", "Incident response")
        # 240 of 300 used: not past the quota yet, so one more prompt is written.
        client.roles.update(role.role_id, org, name="Site reliability")
        asked = len(fake.requests)
        # 480 of 300: whatever would ask the model again is refused, and it is not asked.
        for call in (lambda: client.roles.create(org, "Ops", "On-call"),
                     lambda: client.roles.update(role.role_id, org, focus="Postmortems"),
                     lambda: client.roles.regenerate_prompt(role.role_id, org)):
            with pytest.raises(MemsyAPIError) as e:
                call()
            assert e.value.status_code == 429
        assert len(fake.requests) == asked
        r = client._client.post(f"/roles/{role.role_id}/regenerate-prompt", params={"org_id": org})
        detail = r.json()["detail"]
        assert (r.status_code, detail["error"], detail["dimension"]) == (429, "usage_limit_exceeded", "llm_tokens")
        assert r.headers["X-Usage-LlmTokens"] == "480" and r.headers["X-Usage-LlmTokens-Limit"] == "300"
        # A prompt the user writes needs no model.
        mine = client.roles.update(role.role_id, org, promotion_prompt="Promote runbooks.")
        assert mine.prompt_meta["source"] == "user"
