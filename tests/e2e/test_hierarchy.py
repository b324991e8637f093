"""Org → role → team records through the public memsy SDK (0.3.5):
`client.orgs`, `client.roles` and `client.teams`. Every route needs the
admin scope and sees only the key's own org. Each test uses its own org
ids, so the session's one server can be shared."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from memsy import AsyncMemsyClient, EventPayload, MemsyClient
from memsy.exceptions import AuthorizationError, MemsyAPIError

ID_RE = re.compile(r"^[A-Za-z0-9_\-:.@/]+$")


def org_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def admin_client(server, org: str) -> MemsyClient:
    return MemsyClient(base_url=server.base_url, api_key=server.create_key(org, scopes="read,write,admin"), max_retries=0)


def api_error(fn, *args, **kwargs) -> MemsyAPIError:
    with pytest.raises(MemsyAPIError) as e:
        fn(*args, **kwargs)
    return e.value


def test_org_record_lifecycle(server):
    org = org_name("acme")
    with admin_client(server, org) as c:
        assert c.orgs.list() == []
        assert api_error(c.orgs.get, org).status_code == 404

        rec = c.orgs.create(org, "Acme Inc", "Customer support for billing questions")
        assert rec.org_id == org and rec.name == "Acme Inc"
        assert rec.focus == "Customer support for billing questions"
        assert "Acme Inc" in rec.promotion_prompt and "billing questions" in rec.promotion_prompt
        assert rec.prompt_meta["source"] == "template" and rec.prompt_meta["template_version"] == 1
        assert rec.created_at == rec.updated_at

        assert c.orgs.get(org) == rec
        assert c.orgs.list() == [rec]

        dup = api_error(c.orgs.create, org, "Again", "x")
        assert dup.status_code == 409 and dup.error_code == "already_exists"

        # An empty PATCH changes nothing, not even updated_at.
        assert c.orgs.update(org) == rec

        renamed = c.orgs.update(org, name="Acme Corp")
        assert renamed.name == "Acme Corp" and renamed.created_at == rec.created_at
        assert "Acme Corp" in renamed.promotion_prompt and renamed.prompt_meta["source"] == "template"
        assert renamed.updated_at >= rec.updated_at

        mine = c.orgs.update(org, promotion_prompt="Promote only refund policies.")
        assert mine.promotion_prompt == "Promote only refund policies."
        assert mine.prompt_meta["source"] == "user" and "edited_at" in mine.prompt_meta

        regen = c.orgs.regenerate_prompt(org)
        assert regen.prompt_meta["source"] == "template" and "Acme Corp" in regen.promotion_prompt
        assert regen.focus == rec.focus

        assert c.orgs.delete(org) is None
        assert api_error(c.orgs.get, org).status_code == 404
        assert api_error(c.orgs.delete, org).status_code == 404
        assert api_error(c.orgs.regenerate_prompt, org).status_code == 404
        assert c.orgs.list() == []
        # The org can be set up again after a delete.
        again = c.orgs.create(org, "Acme", "Sales")
        assert again.name == "Acme" and c.orgs.list() == [again]


@pytest.mark.parametrize("kind", ["roles", "teams"])
def test_role_and_team_lifecycle(server, kind):
    org = org_name("initech")
    id_field = kind[:-1] + "_id"
    with admin_client(server, org) as c:
        res = getattr(c, kind)
        assert res.list(org) == []

        a = res.create(org, "Support engineer", "Escalations and refund handling")
        rid = getattr(a, id_field)
        assert rid.startswith(kind[:-1] + "_") and ID_RE.match(rid) and rid == rid.lower()
        assert a.org_id == org and a.name == "Support engineer"
        assert "Support engineer" in a.promotion_prompt and "refund handling" in a.promotion_prompt
        assert a.prompt_meta["source"] == "template"

        b = res.create(org, "Sales", "Pipeline and pricing")
        d = res.create(org, "Ops", "On-call and incidents")
        assert len({rid, getattr(b, id_field), getattr(d, id_field)}) == 3

        everything = res.list(org)
        assert [getattr(r, id_field) for r in everything] == [rid, getattr(b, id_field), getattr(d, id_field)]
        assert res.list(org, limit=2) == everything[:2]
        assert res.list(org, limit=2, offset=2) == everything[2:]
        assert res.list(org, offset=3) == []
        assert res.get(rid, org) == a

        renamed = res.update(rid, org, name="Support lead")
        assert renamed.name == "Support lead" and renamed.focus == a.focus
        assert "Support lead" in renamed.promotion_prompt and renamed.prompt_meta["source"] == "template"
        assert renamed.prompt_meta["generated_at"] >= a.prompt_meta["generated_at"]

        custom = res.update(rid, org, promotion_prompt="Promote escalation runbooks only.")
        assert custom.prompt_meta["source"] == "user"
        # A prompt the user wrote survives a change of focus.
        refocused = res.update(rid, org, focus="Chargebacks")
        assert refocused.focus == "Chargebacks"
        assert refocused.promotion_prompt == "Promote escalation runbooks only."
        assert refocused.prompt_meta["source"] == "user"

        regen = res.regenerate_prompt(rid, org)
        assert regen.prompt_meta["source"] == "template"
        assert "Support lead" in regen.promotion_prompt and "Chargebacks" in regen.promotion_prompt
        assert res.get(rid, org) == regen

        assert res.delete(rid, org) is None
        assert api_error(res.get, rid, org).status_code == 404
        assert api_error(res.update, rid, org, name="x").status_code == 404
        assert api_error(res.delete, rid, org).status_code == 404
        assert api_error(res.get, kind[:-1] + "_doesnotexist", org).status_code == 404
        assert api_error(res.get, "not a valid id*", org).status_code == 404
        assert [getattr(r, id_field) for r in res.list(org)] == [getattr(b, id_field), getattr(d, id_field)]


def test_other_orgs_records_are_invisible(server):
    org, other = org_name("umbrella"), org_name("globex")
    with admin_client(server, org) as c, admin_client(server, other) as o:
        c.orgs.create(org, "Umbrella", "Research")
        role = c.roles.create(org, "Scientist", "Lab results")
        team = c.teams.create(org, "Lab", "Experiments")

        # Addressed with the owner's org id or with its own: never visible.
        for org_id in (org, other):
            assert api_error(o.roles.get, role.role_id, org_id).status_code == 404
            assert api_error(o.roles.update, role.role_id, org_id, name="Stolen").status_code == 404
            assert api_error(o.roles.regenerate_prompt, role.role_id, org_id).status_code == 404
            assert api_error(o.roles.delete, role.role_id, org_id).status_code == 404
            assert api_error(o.teams.get, team.team_id, org_id).status_code == 404
            assert api_error(o.teams.delete, team.team_id, org_id).status_code == 404
        assert api_error(o.roles.list, org).status_code == 404
        assert api_error(o.teams.list, org).status_code == 404
        assert o.roles.list(other) == [] and o.orgs.list() == []
        for call in (o.orgs.get, o.orgs.regenerate_prompt, o.orgs.delete):
            assert api_error(call, org).status_code == 404
        assert api_error(o.orgs.update, org, name="Stolen").status_code == 404

        # Creating in a foreign org is refused outright.
        for call in (o.orgs.create, o.roles.create, o.teams.create):
            with pytest.raises(AuthorizationError) as e:
                call(org, "Mole", "Secrets")
            assert e.value.status_code == 403 and e.value.error_code == "org_mismatch"

        # Nothing changed for the owner.
        assert c.roles.get(role.role_id, org) == role
        assert c.teams.list(org) == [team]
        assert c.orgs.get(org).name == "Umbrella"


def test_admin_scope_is_required(server):
    org = org_name("hooli")
    with admin_client(server, org) as c:
        role = c.roles.create(org, "Engineer", "Compression")
    for scopes in ("read", "read,write"):
        key = server.create_key(org, scopes=scopes)
        with MemsyClient(base_url=server.base_url, api_key=key, max_retries=0) as limited:
            calls = [
                lambda: limited.orgs.list(),
                lambda: limited.orgs.create(org, "n", "f"),
                lambda: limited.orgs.get(org),
                lambda: limited.roles.list(org),
                lambda: limited.roles.get(role.role_id, org),
                lambda: limited.roles.update(role.role_id, org, name="x"),
                lambda: limited.roles.delete(role.role_id, org),
                lambda: limited.teams.create(org, "n", "f"),
                lambda: limited.teams.regenerate_prompt("team_x", org),
                # Scope comes before the org check: a foreign org is 403 too.
                lambda: limited.roles.list("someone-else"),
            ]
            for call in calls:
                with pytest.raises(AuthorizationError) as e:
                    call()
                assert e.value.status_code == 403 and e.value.required_scope == "admin"
    with admin_client(server, org) as c:
        assert c.roles.get(role.role_id, org) == role


def test_bad_input_is_422(server):
    org = org_name("pied")
    with admin_client(server, org) as c:
        role = c.roles.create(org, "Engineer", "Compression")
        cases = [
            (c.orgs.create, (org, "", "focus")),
            (c.orgs.create, (org, "name", "")),
            (c.roles.create, (org, "   ", "focus")),
            (c.roles.create, (org, "n" * 201, "focus")),
            (c.teams.create, (org, "name", "f" * 2001)),
            (c.roles.list, (org,), {"limit": 0}),
            (c.roles.list, (org,), {"limit": 501}),
            (c.teams.list, (org,), {"offset": -1}),
            (c.roles.update, (role.role_id, org), {"name": ""}),
            (c.roles.update, (role.role_id, org), {"promotion_prompt": "p" * 8001}),
        ]
        for fn, args, *kw in cases:
            e = api_error(fn, *args, **(kw[0] if kw else {}))
            assert e.status_code == 422, (fn, args, kw, e)
        # Limits are inclusive.
        assert len(c.roles.list(org, limit=500)) == 1
        long = c.teams.create(org, "n" * 200, "f" * 2000)
        assert len(long.name) == 200
        edited = c.roles.update(role.role_id, org, promotion_prompt="p" * 8000)
        assert len(edited.promotion_prompt) == 8000
        # A wrongly typed field names itself (raw request: the SDK always sends strings).
        r = c._client.post("/roles", json={"org_id": org, "name": 5, "focus": "f"})
        assert r.status_code == 422 and r.json()["detail"]["field"] == "name"
        r = c._client.patch(f"/roles/{role.role_id}", params={"org_id": org}, json={"focus": ["x"]})
        assert r.status_code == 422 and r.json()["detail"]["field"] == "focus"


def test_minted_ids_work_on_ingest_and_search(server):
    org = org_name("vandelay")
    with admin_client(server, org) as c:
        role = c.roles.create(org, "Importer", "Latex imports")
        team = c.teams.create(org, "Imports", "Shipping")
        r = c.ingest([
            EventPayload(actor_id="art", session_id="s1", kind="user_message", content="We import latex from Spain.",
                         role_id=role.role_id, team_id=team.team_id),
        ])
        assert len(r.event_ids) == 1
        res = c.search("latex", role_ids=[role.role_id], team_ids=[team.team_id])
        assert res.results is not None


def test_async_client(server):
    org = org_name("wonka")
    key = server.create_key(org, scopes="read,write,admin")

    async def main() -> None:
        async with AsyncMemsyClient(base_url=server.base_url, api_key=key, max_retries=0) as c:
            rec = await c.orgs.create(org, "Wonka", "Chocolate recipes")
            assert (await c.orgs.list()) == [rec]
            assert (await c.orgs.update(org, focus="Candy")).focus == "Candy"
            assert (await c.orgs.regenerate_prompt(org)).prompt_meta["source"] == "template"

            role = await c.roles.create(org, "Oompa", "Factory safety")
            team = await c.teams.create(org, "Inventing", "New flavours")
            assert (await c.roles.get(role.role_id, org)) == role
            assert (await c.teams.list(org, limit=1)) == [team]
            updated = await c.teams.update(team.team_id, org, name="Invention room")
            assert "Invention room" in updated.promotion_prompt
            assert (await c.roles.regenerate_prompt(role.role_id, org)).role_id == role.role_id
            await c.roles.delete(role.role_id, org)
            await c.teams.delete(team.team_id, org)
            assert (await c.roles.list(org)) == [] and (await c.teams.list(org)) == []
            with pytest.raises(MemsyAPIError) as e:
                await c.teams.get(team.team_id, org)
            assert e.value.status_code == 404
            with pytest.raises(MemsyAPIError) as e:
                await c.orgs.create(org, "Wonka", "Again")
            assert e.value.status_code == 409
            await c.orgs.delete(org)
            assert (await c.orgs.list()) == []

    asyncio.run(main())
