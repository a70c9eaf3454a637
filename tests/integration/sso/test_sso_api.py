"""ingest's single sign-on API against a real provider (conftest.py): the configuration is admin-only and never
shows its secret, the public steps refuse what they cannot verify with a 4xx, and the CLI takes the secret from
the environment, not its command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx

from deploy.local import crm_keys, registry_keys
from tests.integration.conftest import DATABASE_URL, ROOT, create_tenant, token_cli
from tests.integration.sso.conftest import ADMIN_GROUP, Idp, sso_tenant


async def test_the_configuration_is_admin_only_and_its_secret_is_never_shown(services: dict[str, str],
                                                                            provider: Idp) -> None:
    ingest = services["ingest"]
    tenant = await asyncio.to_thread(create_tenant)
    rep = await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", "rep", "--rep", "bo")
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        assert (await client.get(f"{ingest}/v1/sso")).status_code == 404
        first = {"issuer": provider.issuer, "client_id": provider.client_id, "admin_groups": [ADMIN_GROUP]}
        refused = await client.put(f"{ingest}/v1/sso", json=first)
        assert refused.status_code == 422 and "client_secret" in refused.text  # the first one needs the secret
        put = await client.put(f"{ingest}/v1/sso", json=first | {"client_secret": provider.client_secret,
                                                                 "session_minutes": 30})
        assert put.status_code == 200, put.text
        shown = await client.get(f"{ingest}/v1/sso")
        kept = await client.put(f"{ingest}/v1/sso", json=first | {"viewer_groups": ["floor"]})  # secret kept
        http_issuer = await client.put(f"{ingest}/v1/sso", json=first | {"issuer": "http://login.example.com"})
        public = await client.get(f"{ingest}/v1/sso/{tenant.slug}/client", headers={"Authorization": ""})
    assert shown.json() == {"tenant": tenant.slug, "issuer": provider.issuer, "client_id": provider.client_id,
                            "admin_groups": [ADMIN_GROUP], "viewer_groups": [], "session_minutes": 30.0,
                            "client_secret_set": True}
    assert kept.status_code == 200 and kept.json()["viewer_groups"] == ["floor"]
    assert http_issuer.status_code == 422 and "https is required" in http_issuer.text
    assert public.status_code == 200
    assert public.json() == {"issuer": provider.issuer, "authorization_endpoint": f"{provider.issuer}/auth",
                             "end_session_endpoint": f"{provider.issuer}/session/end", "client_id": provider.client_id}
    for answer in (put, shown, kept, public):
        assert provider.client_secret not in answer.text
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {rep['token']}"}) as client:
        assert (await client.get(f"{ingest}/v1/sso")).status_code == 403
        assert (await client.put(f"{ingest}/v1/sso", json=first)).status_code == 403


async def test_a_code_the_provider_does_not_know_is_a_400_and_a_tenant_without_sso_a_404(
        services: dict[str, str], provider: Idp) -> None:
    ingest = services["ingest"]
    tenant = await sso_tenant(services, provider)
    plain = await asyncio.to_thread(create_tenant)
    body = {"tenant": tenant.slug, "code": "not-a-code-the-provider-made", "code_verifier": "v" * 43,
            "redirect_uri": f"{services['kpi']}/signin/sso/callback", "nonce": "n" * 20}
    async with httpx.AsyncClient(timeout=20) as client:
        bad_code = await client.post(f"{ingest}/v1/sessions", json=body)
        no_sso = await client.post(f"{ingest}/v1/sessions", json=body | {"tenant": plain.slug})
        no_client = await client.get(f"{ingest}/v1/sso/{plain.slug}/client")
        # a token that was not made at sign-in is no session: neither renewed nor signed out here
        renew = await client.post(f"{ingest}/v1/sessions/refresh", headers=tenant.auth)
        out = await client.delete(f"{ingest}/v1/sessions/current", headers=tenant.auth)
        anonymous = await client.post(f"{ingest}/v1/sessions/refresh")
    assert bad_code.status_code == 400, bad_code.text
    assert "refused the sign-in" in bad_code.json()["detail"] and "not-a-code" not in bad_code.text
    assert no_sso.status_code == 404 and no_client.status_code == 404
    assert renew.status_code == 404 and out.status_code == 404 and anonymous.status_code == 401


async def test_the_cli_sets_single_sign_on_with_the_secret_from_an_environment_variable(
        services: dict[str, str], provider: Idp) -> None:
    tenant = await asyncio.to_thread(create_tenant)
    env = {**os.environ, **crm_keys.env(), **registry_keys.env(), "DATABASE_URL": DATABASE_URL,
           "IDP_CLIENT_SECRET": provider.client_secret}
    command = [sys.executable, "-m", "services.ingest", "tenants", "set-sso", tenant.slug, "--issuer", provider.issuer,
               "--client-id", provider.client_id, "--admin-group", ADMIN_GROUP, "--viewer-group", "floor",
               "--viewer-group", "tv", "--session-minutes", "45", "--client-secret-env", "IDP_CLIENT_SECRET"]
    done = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, env=env, capture_output=True, text=True,
                                   check=False)
    assert done.returncode == 0, done.stderr
    assert provider.client_secret not in done.stdout + done.stderr
    assert json.loads(done.stdout)["status"] == "single sign-on set"
    on_argv = await asyncio.to_thread(subprocess.run, [*command[:-2], "--client-secret", "hunter2"], cwd=ROOT,
                                      env=env, capture_output=True, text=True, check=False)
    assert on_argv.returncode == 2 and "not taken on the command line" in on_argv.stderr
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        shown = (await client.get(f"{services['ingest']}/v1/sso")).json()
    assert shown == {"tenant": tenant.slug, "issuer": provider.issuer, "client_id": provider.client_id,
                     "admin_groups": [ADMIN_GROUP], "viewer_groups": ["floor", "tv"], "session_minutes": 45.0,
                     "client_secret_set": True}
