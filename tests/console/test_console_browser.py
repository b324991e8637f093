"""The web console at /console/, driven in headless Chromium against
`memsy serve` with events ingested through the memsy SDK: sign-in, the
memories with their filters, sorts and search, a memory's page and its
source event, actors, keys created and revoked, what a read-only key sees,
pin, archive and delete. Each view's screenshot is saved to docs/console/."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
import requests
from memsy import EventPayload, MemsyClient
from playwright.sync_api import Page, expect

from conftest import e2e_sdk

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "console"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# (actor_id, content, ts): each yields at least one memory with the rules
# extractor; the times make observed_at differ from one to the next.
EVENTS = [
    ("alice", "I prefer dark mode in all apps.", "2025-03-01T09:00:00Z"),
    ("alice", "My dog's name is Rex.", "2025-03-02T09:00:00Z"),
    ("alice", "Book a vet visit for tomorrow.", "2025-03-03T09:00:00Z"),
    ("bob", "I live in Paris.", "2025-03-04T09:00:00Z"),
    ("bob", "I'm allergic to peanuts.", "2025-03-05T09:00:00Z"),
    ("carol", "My favourite editor is Neovim.", "2025-03-06T09:00:00Z"),
]


@pytest.fixture(scope="module")
def world(server):
    """One org with the events' memories, an admin key and a read-only key."""
    org = f"console-ui-{uuid.uuid4().hex[:8]}"
    admin = server.create_key(org, scopes="admin", name="console admin")
    reader = server.create_key(org, scopes="read", name="console reader")
    with MemsyClient(base_url=server.base_url, api_key=admin) as c:
        payloads = [EventPayload(actor_id=a, session_id=f"sess-{i}", kind="user_message", content=text, ts=ts)
                    for i, (a, text, ts) in enumerate(EVENTS)]
        ids = c.ingest(payloads).event_ids
        e2e_sdk.wait_settled(c, ids)
    memories = api(server, admin, "/v1/console/memories", status="all", limit=200)["items"]
    assert {m["scope"]["actor_id"] for m in memories} == {"alice", "bob", "carol"}, memories
    return {"org": org, "admin": admin, "reader": reader, "console": f"{server.root_url}/console/"}


def api(server, key: str, path: str, **params):
    r = requests.get(f"{server.root_url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    r.raise_for_status()
    return r.json()


def memory_with(server, key: str, needle: str) -> dict:
    items = api(server, key, "/v1/console/memories", status="all", search=needle, limit=200)["items"]
    assert items, f"no memory with {needle!r}"
    return items[0]


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=LAPTOP)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert not errors, f"the page raised: {errors}"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def sign_in(page: Page, world, key: str) -> None:
    page.goto(world["console"])
    page.get_by_label("API key").fill(key)
    # The keyboard alone signs in.
    page.get_by_label("API key").press("Enter")
    expect(page.get_by_role("navigation", name="Views")).to_be_visible()


def cards(page: Page, label: str = "Memories"):
    return page.get_by_role("list", name=label).locator(":scope > li")


def assert_inputs_labelled(page: Page) -> None:
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.outerHTML)""")
    assert not unlabelled, unlabelled


# ---- serving


def test_the_console_is_served_without_a_key(server):
    r = requests.get(f"{server.root_url}/console", timeout=10, allow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/console/"
    r = requests.get(f"{server.root_url}/console/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.headers
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert '<script type="module" src="js/app.js">' in r.text
    for path in ("js/app.js", "vendor/preact.mjs", "vendor/hooks.mjs"):
        r = requests.get(f"{server.root_url}/console/{path}", timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), path
    assert requests.get(f"{server.root_url}/console/style.css", timeout=10).headers["content-type"].startswith("text/css")
    assert requests.get(f"{server.root_url}/console/no-such-file.js", timeout=10).status_code == 404
    # The API's own /console routes are unchanged: still JSON, still authenticated.
    assert requests.get(f"{server.root_url}/console/memories", timeout=10).status_code == 401


def test_one_event_by_id_is_the_orgs_own(server, world):
    """GET /api/console/events/{id}, which a memory's page reads its source events from."""
    rex = memory_with(server, world["admin"], "Rex")
    event_id = rex["source_event_ids"][0]
    e = api(server, world["reader"], f"/api/console/events/{event_id}")
    assert (e["event_id"], e["actor_id"], e["content"]) == (event_id, "alice", "My dog's name is Rex.")
    other = server.create_key(f"console-other-{uuid.uuid4().hex[:8]}", scopes="read")
    for key, path in ((other, event_id), (world["admin"], "no-such-event")):
        r = requests.get(f"{server.root_url}/api/console/events/{path}", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 404 and r.json()["detail"]["error"] == "not_found", r.text


# ---- sign-in


def test_a_bad_key_is_refused_with_a_clear_message(page, world):
    page.goto(world["console"])
    expect(page.get_by_role("heading", name="memsy console")).to_be_visible()
    assert_inputs_labelled(page)
    page.get_by_label("API key").fill("msy_" + "0" * 40)
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("This API key was refused: it is unknown, revoked or expired")
    expect(page.get_by_role("navigation", name="Views")).to_have_count(0)
    shot(page, "sign-in-refused")


# ---- memories


def test_memories_filter_sort_search_and_page(page, world, server):
    sign_in(page, world, world["admin"])
    expect(page.get_by_role("heading", name="Memories", exact=True)).to_be_visible()
    active = api(server, world["admin"], "/v1/console/memories", limit=200)
    expect(cards(page)).to_have_count(active["total"])
    expect(page.get_by_text(f"1–{active['total']} of {active['total']}")).to_be_visible()
    assert_inputs_labelled(page)
    shot(page, "memories")

    # Text search, kept in the URL so that a reload shows the same list.
    page.get_by_label("Search text").fill("rex")
    page.get_by_role("button", name="Search").click()
    expect(cards(page)).to_have_count(len(api(server, world["admin"], "/v1/console/memories", search="rex")["items"]))
    expect(cards(page).first).to_contain_text("Rex")
    assert "search=rex" in page.url
    page.reload()
    expect(cards(page).first).to_contain_text("Rex")
    expect(page.get_by_label("Search text")).to_have_value("rex")
    page.get_by_label("Search text").fill("")
    page.get_by_role("button", name="Search").click()
    expect(cards(page)).to_have_count(active["total"])

    # Sorts: the first card is the API's first for that sort.
    for sort in ("observed_at_asc", "observed_at_desc", "confidence_desc"):
        page.get_by_label("Sort").select_option(sort)
        first = api(server, world["admin"], "/v1/console/memories", sort=sort)["items"][0]
        expect(cards(page).first.locator(".card-title")).to_have_text(first["text"])

    # A type filter shows only memories of that type.
    types = api(server, world["admin"], "/v1/console/memories/stats")["by_type"]
    kind = sorted(types)[0]
    page.get_by_label("Type").select_option(kind)
    want = api(server, world["admin"], "/v1/console/memories", type=kind)["total"]
    expect(cards(page)).to_have_count(want)
    page.get_by_label("Type").select_option("")

    # Status chips: "All" is pressed and shows every status.
    page.get_by_role("button", name="All", exact=True).click()
    expect(page.get_by_role("button", name="All", exact=True)).to_have_attribute("aria-pressed", "true")
    assert "status=all" in page.url
    every = api(server, world["admin"], "/v1/console/memories", status="all")["total"]
    expect(cards(page)).to_have_count(every)


def test_paging_moves_through_a_list(page, world, server):
    # More events than a page holds (25), in an org of their own: in the
    # shared world their memories, newer than the six, would fill the first
    # page of the memory list and push the other tests' memories (Rex's) off it.
    admin = server.create_key(f"console-pager-{uuid.uuid4().hex[:8]}", scopes="admin", name="console pager")
    with MemsyClient(base_url=server.base_url, api_key=admin) as c:
        ids = c.ingest([EventPayload(actor_id="pager", session_id="sess-p", kind="user_message",
                                     content=f"Note {n}: the meeting moved to room {100 + n}.", ts=f"2025-04-01T10:{n:02d}:00Z")
                        for n in range(30)]).event_ids
        e2e_sdk.wait_settled(c, ids)
    sign_in(page, world, admin)
    page.goto(world["console"] + "#/events?actor_id=pager&sort=ts_asc")
    events = cards(page, "Events")
    pager = page.get_by_role("navigation", name="Events pages")
    expect(pager).to_contain_text("1–25 of 30")
    expect(events).to_have_count(25)
    expect(events.first).to_contain_text("Note 0:")
    pager.get_by_role("button", name="Next").click()
    expect(pager).to_contain_text("26–30 of 30")
    expect(events).to_have_count(5)
    expect(events.first).to_contain_text("Note 25:")
    expect(pager.get_by_role("button", name="Next")).to_be_disabled()
    assert "offset=25" in page.url
    pager.get_by_role("button", name="Previous").click()
    expect(pager).to_contain_text("1–25 of 30")


def test_a_memory_leads_to_its_source_event(page, world, server):
    sign_in(page, world, world["admin"])
    rex = memory_with(server, world["admin"], "Rex")
    page.get_by_role("link", name=rex["text"]).click()
    expect(page.locator(".memory-text")).to_have_text(rex["text"])
    for label in ("Type", "Kind", "Confidence", "Strength now", "Scope", "Entities"):
        expect(page.locator(".facts dt", has_text=re.compile(f"^{label}$"))).to_have_count(1)
    sources = page.get_by_role("region", name="Source events")
    expect(sources).to_contain_text("My dog's name is Rex.")
    expect(sources).to_contain_text("2025-03-02 09:00 UTC")
    shot(page, "memory")

    sources.get_by_role("link", name="My dog's name is Rex.").click()
    expect(page.get_by_role("heading", name="Event", exact=True)).to_be_visible()
    expect(page.get_by_test_id("event-content")).to_have_text("My dog's name is Rex.")
    assert f"#/events/{rex['source_event_ids'][0]}" in page.url
    back = page.get_by_role("region", name="Memories from this event")
    expect(back.get_by_role("link", name=rex["text"])).to_be_visible()
    shot(page, "event")


def test_actors_list_search_and_page(page, world):
    sign_in(page, world, world["admin"])
    page.get_by_role("link", name="Actors").click()
    table = page.get_by_role("table", name="Actors")
    for actor in ("alice", "bob", "carol"):
        expect(table.get_by_role("link", name=actor, exact=True)).to_be_visible()
    page.get_by_label("Sort").select_option("actor_id_asc")
    expect(table.locator("tbody tr").first).to_contain_text("alice")
    shot(page, "actors")
    page.get_by_label("Search actor id").fill("bo")
    page.get_by_role("button", name="Search").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    table.get_by_role("link", name="bob").click()
    expect(page.get_by_role("heading", name="bob", exact=True)).to_be_visible()
    expect(cards(page, "Memories of the actor").filter(has_text="Paris")).to_have_count(1)
    expect(cards(page, "Events of the actor").filter(has_text="I live in Paris.")).to_have_count(1)
    expect(cards(page, "Events of the actor").filter(has_text="Rex")).to_have_count(0)
    shot(page, "actor")


# ---- keys


def test_a_key_is_shown_once_and_revoked_keys_get_401(page, world, server):
    sign_in(page, world, world["admin"])
    page.get_by_role("link", name="Keys").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    assert_inputs_labelled(page)
    page.get_by_label("Name").fill("ci reader")
    page.get_by_role("checkbox", name=re.compile("^write")).uncheck()
    page.get_by_role("button", name="Create key").click()
    raw = page.get_by_test_id("raw-key").inner_text()
    assert re.fullmatch(r"msy_[0-9a-f]{40}", raw), raw
    me = requests.get(f"{server.root_url}/api/me", headers={"Authorization": f"Bearer {raw}"}, timeout=10)
    assert me.status_code == 200 and me.json()["scopes"] == ["read"], me.text
    row = page.locator("tr", has_text="ci reader")
    expect(row).to_contain_text("read")
    shot(page, "keys")

    # Shown once: gone after Done, and on the next visit.
    page.get_by_role("button", name="Done").click()
    expect(page.get_by_test_id("raw-key")).to_have_count(0)
    page.reload()
    expect(row).to_be_visible()
    assert raw not in page.content()

    # The key in use cannot be revoked from here.
    expect(page.locator("tr", has_text="console admin").get_by_role("button")).to_have_count(0)
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke ci reader").click()
    expect(row).to_have_count(0)
    deadline = time.time() + 10
    while True:
        status = requests.get(f"{server.root_url}/api/me", headers={"Authorization": f"Bearer {raw}"}, timeout=10).status_code
        if status == 401 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert status == 401


# ---- a read-only key


def test_a_read_only_key_sees_no_admin_actions(page, world, server):
    sign_in(page, world, world["reader"])
    expect(page.get_by_test_id("key-scopes")).to_contain_text("read-only")
    nav = page.get_by_role("navigation", name="Views")
    for view in ("Memories", "Stats", "Actors", "Events"):
        expect(nav.get_by_role("link", name=view)).to_be_visible()
    for view in ("Keys", "Usage", "Hierarchy"):
        expect(nav.get_by_role("link", name=view)).to_have_count(0)
    rex = memory_with(server, world["reader"], "Rex")
    page.get_by_role("link", name=rex["text"]).click()
    expect(page.locator(".memory-text")).to_have_text(rex["text"])
    expect(page.get_by_role("region", name="Source events")).to_contain_text("Rex")
    for action in ("Pin", "Unpin", "Archive", "Restore", "Delete"):
        expect(page.get_by_role("button", name=action, exact=True)).to_have_count(0)
    page.goto(world["console"] + "#/keys")
    expect(page.get_by_role("alert")).to_contain_text("needs an API key with the admin scope")
    expect(page.get_by_role("button", name="Create key")).to_have_count(0)


# ---- the other views


def test_stats_events_hierarchy_and_usage_views(page, world, server):
    sign_in(page, world, world["admin"])
    page.get_by_role("link", name="Stats").click()
    stats = api(server, world["admin"], "/v1/console/memories/stats")
    by_type = page.locator("figure", has_text="By type")
    for t, n in stats["by_type"].items():
        expect(by_type.locator("tr", has_text=t).locator("td.num")).to_have_text(str(n))
    expect(page.locator("figure", has_text="Memories over time")).to_be_visible()
    shot(page, "stats")

    page.get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", name="Raw events")).to_be_visible()
    page.get_by_label("Actor id").fill("carol")
    page.get_by_role("button", name="Filter").click()
    expect(cards(page, "Events")).to_have_count(1)
    expect(cards(page, "Events")).to_contain_text("Neovim")
    page.get_by_label("Actor id").fill("")
    page.get_by_role("button", name="Filter").click()
    assert_inputs_labelled(page)
    shot(page, "events")

    page.get_by_role("link", name="Hierarchy").click()
    roles = page.get_by_role("region", name="Roles")
    roles.get_by_label("Name").fill("Support")
    roles.get_by_label("Focus").fill("refunds and delivery problems")
    roles.get_by_role("button", name="Create role").click()
    expect(roles.get_by_role("heading", name=re.compile("^Support"))).to_be_visible()
    roles.get_by_role("button", name="Edit").click()
    roles.get_by_role("listitem").get_by_label("Focus").fill("refunds only")
    roles.get_by_role("button", name="Save").click()
    expect(roles).to_contain_text("refunds only")
    assert_inputs_labelled(page)
    shot(page, "hierarchy")

    page.get_by_role("link", name="Usage").click()
    expect(page.get_by_role("heading", name="Usage")).to_be_visible()
    expect(page.locator("figure", has_text="against the plan's limits").locator("tr", has_text="events ingested")).to_be_visible()
    shot(page, "usage")


def test_pin_archive_and_delete_a_memory(page, world, server):
    sign_in(page, world, world["admin"])
    peanuts = memory_with(server, world["admin"], "peanuts")
    page.goto(world["console"] + f"#/memories/{peanuts['memory_id']}")
    page.get_by_role("button", name="Pin", exact=True).click()
    expect(page.get_by_role("button", name="Unpin")).to_be_visible()
    assert api(server, world["admin"], f"/v1/console/memories/{peanuts['memory_id']}")["pinned"] is True
    page.get_by_role("button", name="Archive").click()
    expect(page.get_by_role("button", name="Restore")).to_be_visible()
    assert api(server, world["admin"], f"/v1/console/memories/{peanuts['memory_id']}")["status"] == "archived"
    page.get_by_role("button", name="Restore").click()
    expect(page.get_by_role("button", name="Archive")).to_be_visible()
    assert api(server, world["admin"], f"/v1/console/memories/{peanuts['memory_id']}")["status"] == "active"

    vet = memory_with(server, world["admin"], "vet")
    page.goto(world["console"] + f"#/memories/{vet['memory_id']}")
    expect(page.locator(".memory-text")).to_have_text(vet["text"])
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Memories", exact=True)).to_be_visible()
    r = requests.get(f"{server.root_url}/v1/console/memories/{vet['memory_id']}",
                     headers={"Authorization": f"Bearer {world['admin']}"}, timeout=10)
    assert r.status_code == 404
    expect(page.get_by_role("link", name=vet["text"])).to_have_count(0)


def test_a_revoked_key_mid_session_returns_to_sign_in(page, world, server):
    key = server.create_key(world["org"], scopes="read", name="short-lived")
    sign_in(page, world, key)
    # The view's own reads are done (the list, and the stats behind the type filter).
    expect(cards(page).first).to_be_visible()
    expect(page.get_by_label("Type").locator("option")).not_to_have_count(1)
    kid = api(server, key, "/api/me")["key_id"]
    r = requests.delete(f"{server.root_url}/api/keys/{kid}", headers={"Authorization": f"Bearer {world['admin']}"}, timeout=10)
    assert r.status_code == 204
    time.sleep(0.5)
    page.get_by_role("link", name="Stats").click()
    expect(page.get_by_role("alert")).to_contain_text("refused this API key")
    expect(page.get_by_label("API key")).to_be_visible()


def test_the_console_fits_a_phone(browser, world):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    try:
        sign_in(page, world, world["admin"])
        expect(cards(page).first).to_be_visible()
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"the page scrolls sideways on a phone: {width}"
        page.screenshot(path=str(SHOTS / "memories-phone.png"))
    finally:
        context.close()
