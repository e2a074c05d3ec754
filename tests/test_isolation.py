"""Two companies never see each other's agents, keys, sources, customers or configs."""

from __future__ import annotations

import httpx

from tests.support import Tenant, create_agent


async def test_companies_are_invisible_to_each_other(client: httpx.AsyncClient, tenant: Tenant,
                                                     other_tenant: Tenant) -> None:
    mine = tenant.headers
    theirs = other_tenant.headers
    action = (await client.post("/v1/actions", json={"name": "act", "webhook_url": "https://x.example.com"},
                                headers=mine)).json()
    source = (await client.post("/v1/knowledge/sources", json={"name": "src"}, headers=mine)).json()
    customer = (await client.post("/v1/customers", json={"customer_id": "shared-id"}, headers=mine)).json()
    agent = await create_agent(client, tenant, action_ids=[action["id"]], knowledge_source_ids=[source["id"]])
    key = (await client.post("/v1/keys", json={"name": "k"}, headers=mine)).json()

    deletable = (f"/v1/agents/{agent['id']}", f"/v1/actions/{action['id']}",
                 f"/v1/knowledge/sources/{source['id']}", f"/v1/customers/{customer['id']}",
                 "/v1/customers/shared-id")
    for path in (*deletable, f"/v1/agents/{agent['id']}/config", f"/v1/knowledge/sources/{source['id']}/documents"):
        assert (await client.get(path, headers=theirs)).status_code == 404, path
    # Each of these routes exists (a 405 would prove nothing): another company's id is unknown.
    for path in deletable:
        assert (await client.delete(path, headers=theirs)).status_code == 404, path
    for path, body in ((f"/v1/agents/{agent['id']}", {"name": "stolen"}),
                       (f"/v1/actions/{action['id']}", {"description": "stolen"}),
                       (f"/v1/knowledge/sources/{source['id']}", {"name": "stolen"}),
                       (f"/v1/customers/{customer['id']}", {"first_name": "stolen"})):
        assert (await client.patch(path, json=body, headers=theirs)).status_code == 404, path
    assert (await client.delete(f"/v1/keys/{key['id']}", headers=theirs)).status_code == 404

    # Linking another company's action or source is refused as unknown.
    refused = await client.post("/v1/agents", json={"name": "x", "action_ids": [action["id"]]}, headers=theirs)
    assert refused.status_code == 422
    refused = await client.post("/v1/agents", json={"name": "x", "knowledge_source_ids": [source["id"]]},
                                headers=theirs)
    assert refused.status_code == 422

    for path in ("/v1/agents", "/v1/actions", "/v1/knowledge/sources", "/v1/customers", "/v1/keys"):
        listing = (await client.get(path, headers=theirs)).json()
        ids = {item["id"] for item in listing["items"]}
        assert not ids & {agent["id"], action["id"], source["id"], customer["id"], key["id"]}, path

    # The same customer_id is a different customer in another company.
    same = await client.post("/v1/customers", json={"customer_id": "shared-id"}, headers=theirs)
    assert same.status_code == 201 and same.json()["id"] != customer["id"]

    # Nothing of mine was touched.
    assert (await client.get(f"/v1/agents/{agent['id']}", headers=mine)).json()["name"] == agent["name"]
    assert (await client.get("/v1/agents", headers=mine)).json()["total_count"] == 1
