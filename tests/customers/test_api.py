"""The customer API: create, the company's own unique `customer_id`, PATCH with nulls, delete, isolation."""

from __future__ import annotations

import uuid

import httpx

from tests.support import Tenant


async def _create(client: httpx.AsyncClient, tenant: Tenant, **fields: object) -> httpx.Response:
    body = {"customer_id": "cust-" + uuid.uuid4().hex[:8], **fields}
    return await client.post("/v1/customers", json=body, headers=tenant.headers)


async def test_create_read_by_either_reference_and_list(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await _create(client, tenant, first_name="Layla", last_name="Hassan", email="Layla@Example.com",
                            organization="ACME", metadata={"tier": "gold"}, segments=["vip"])
    assert created.status_code == 201, created.text
    customer = created.json()
    assert customer["company_id"] == str(tenant.company_id) and customer["first_name"] == "Layla"
    assert customer["metadata"] == {"tier": "gold"} and customer["segments"] == ["vip"]
    for ref in (customer["id"], customer["customer_id"]):
        fetched = await client.get(f"/v1/customers/{ref}", headers=tenant.headers)
        assert fetched.status_code == 200 and fetched.json()["id"] == customer["id"], ref
    await _create(client, tenant)
    listing = (await client.get("/v1/customers", headers=tenant.headers, params={"page_size": 1})).json()
    assert listing["total_count"] >= 2 and len(listing["items"]) == 1 and listing["page_size"] == 1


async def test_customer_id_is_unique_within_the_company(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first = await _create(client, tenant, customer_id="dup-1", first_name="First")
    assert first.status_code == 201
    again = await _create(client, tenant, customer_id="dup-1", first_name="Second")
    assert again.status_code == 409, again.text
    stored = (await client.get("/v1/customers/dup-1", headers=tenant.headers)).json()
    assert stored["first_name"] == "First"  # the refused create changed nothing


async def test_patch_sets_and_nulls_clear(client: httpx.AsyncClient, tenant: Tenant) -> None:
    customer = (await _create(client, tenant, first_name="Omar", organization="ACME",
                              metadata={"plan": "pro"}, segments=["trial"])).json()
    path = f"/v1/customers/{customer['id']}"
    patched = await client.patch(path, json={"last_name": "Farouk"}, headers=tenant.headers)
    assert patched.status_code == 200
    assert patched.json()["last_name"] == "Farouk" and patched.json()["first_name"] == "Omar"  # others untouched
    cleared = await client.patch(path, json={"first_name": None, "organization": None, "metadata": None,
                                             "segments": None}, headers=tenant.headers)
    assert cleared.status_code == 200, cleared.text
    body = cleared.json()
    assert body["first_name"] is None and body["organization"] is None
    assert body["metadata"] == {} and body["segments"] == [] and body["last_name"] == "Farouk"
    assert body["updated_at"] >= customer["updated_at"]
    for bad, field in (({"email": "not-an-email"}, "email"), ({"customer_id": "renamed"}, "customer_id"),
                       ({"segments": [""]}, "segments")):
        refused = await client.patch(path, json=bad, headers=tenant.headers)
        assert refused.status_code == 422 and field in refused.text, (bad, refused.text)


async def test_delete_and_unknown_references(client: httpx.AsyncClient, tenant: Tenant) -> None:
    customer = (await _create(client, tenant)).json()
    deleted = await client.delete(f"/v1/customers/{customer['customer_id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    for ref in (customer["id"], customer["customer_id"], str(uuid.uuid4())):
        assert (await client.get(f"/v1/customers/{ref}", headers=tenant.headers)).status_code == 404
        assert (await client.delete(f"/v1/customers/{ref}", headers=tenant.headers)).status_code == 404
    # Its customer_id is free again.
    assert (await _create(client, tenant, customer_id=customer["customer_id"])).status_code == 201


async def test_another_companys_customers_are_invisible(client: httpx.AsyncClient, tenant: Tenant,
                                                        other_tenant: Tenant) -> None:
    mine = (await _create(client, tenant, customer_id="same-ref", first_name="Mine")).json()
    theirs = (await _create(client, other_tenant, customer_id="same-ref", first_name="Theirs")).json()
    assert theirs["id"] != mine["id"]
    for ref in (mine["id"],):
        assert (await client.get(f"/v1/customers/{ref}", headers=other_tenant.headers)).status_code == 404
        assert (await client.patch(f"/v1/customers/{ref}", json={"first_name": "x"},
                                   headers=other_tenant.headers)).status_code == 404
        assert (await client.delete(f"/v1/customers/{ref}", headers=other_tenant.headers)).status_code == 404
    # By the shared customer_id, each company reaches only its own.
    assert (await client.get("/v1/customers/same-ref", headers=tenant.headers)).json()["first_name"] == "Mine"
    assert (await client.get("/v1/customers/same-ref", headers=other_tenant.headers)).json()["first_name"] == "Theirs"
    listed = (await client.get("/v1/customers", headers=other_tenant.headers)).json()
    assert mine["id"] not in {item["id"] for item in listed["items"]}
    assert (await client.get(f"/v1/customers/{mine['id']}", headers=tenant.headers)).json()["first_name"] == "Mine"
