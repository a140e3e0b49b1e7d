"""`callboard simulate PROVIDER`: send a running instance a realistic, genuine provider callback.

Like `stripe trigger`: the command reads the same configuration as the server and talks to the
database directly. For a provider with per-job callback URLs it records a job (a made-up provider
job id, metadata `{"simulated": "true"}`), mints that job's callback URL and per-job secret exactly
as a submission would, and sends what the provider sends (`receiver.simulate` builds it). Recall
has no per-job URL: its webhook goes to `/callbacks/recall`, signed with
`CALLBOARD_RECALL_WEBHOOK_SECRET`, and names the job in the transcript's metadata as Recall echoes
it for jobs Callboard submitted.

The job is marked submitted only once the instance has acknowledged the callback; when the
instance cannot be reached or refuses it, the job is marked failed (`simulation_failed`, no event)
and the command prints one line and exits 1. This module is the one place where the httpx errors of
sending become Callboard's.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import click
import httpx
import msgspec

from receiver import __version__
from receiver.cli.common import json_option, print_json, with_service
from receiver.service import Service
from receiver.simulate import (
    AUDIO_URL,
    STATUSES,
    SimulatedRequest,
    Simulation,
    SimulationError,
    build,
    new_provider_job_id,
)
from storage.ids import new_id

SEND_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
METADATA = {"simulated": "true"}
HINTS = {
    401: " (the CLI must share the instance's CALLBOARD_SECRET_KEY or database, and its webhook secrets)",
    404: " (is the target a Callboard instance?)",
}


@dataclass(frozen=True)
class Outcome:
    callback_id: str
    duplicate: bool
    job_id: str
    provider: str
    provider_job_id: str
    status: str
    method: str
    endpoint: str
    fetches_from: str | None


def _refusal(response: httpx.Response) -> str:
    detail = ""
    try:
        error = msgspec.json.decode(response.content).get("error") or {}
        detail = str(error.get("message") or error.get("code") or "")
    except (msgspec.DecodeError, AttributeError):
        detail = " ".join(response.text.split())[:200]
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")


async def send(request: SimulatedRequest, target: str) -> dict[str, Any]:
    """Deliver the request; the instance's answer `{"id", "duplicate"}`, else SimulationError."""
    headers = {"user-agent": f"callboard-simulate/{__version__}", **request.headers}
    try:
        async with httpx.AsyncClient(timeout=SEND_TIMEOUT, follow_redirects=False) as client:
            response = await client.request(
                request.method, request.url, headers=headers, content=request.body
            )
    except httpx.TimeoutException:
        raise SimulationError(f"{target} did not answer within {SEND_TIMEOUT.read:g} s") from None
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        reason = str(exc) or type(exc).__name__
        raise SimulationError(
            f"cannot reach {target}: {reason} (is callboard serve running there?)"
        ) from None
    if response.status_code != 200:
        hint = HINTS.get(response.status_code, "")
        raise SimulationError(f"{target} refused the simulated callback: {_refusal(response)}{hint}")
    try:
        answer = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
        raise SimulationError(f"{target} answered 200, but not as Callboard does: {response.text[:200]!r}")
    return answer


async def simulate(svc: Service, provider: str, status: str, target: str | None) -> Outcome:
    adapter = svc.adapter(provider)  # an unknown provider is one line and exit 1
    config = svc.settings.providers[provider]
    base = (target or svc.settings.public_url).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise SimulationError(f"--target must be an http:// or https:// URL, not {base!r}")
    job_id, provider_job_id = new_id("job"), new_provider_job_id(provider)
    recording_id = new_provider_job_id("recall") if provider == "recall" else None
    url = base + svc.callback_url(provider, job_id).removeprefix(svc.settings.public_url)
    request = build(  # before anything is recorded: refuses recall without its webhook secret
        Simulation(
            provider=provider,
            status=status,
            job_id=job_id,
            provider_job_id=provider_job_id,
            url=url,
            job_secret=svc.tokens.job_secret(job_id, provider),
            webhook_secret=config.webhook_secret,
            metadata=METADATA,
            now=time.time(),
        )
    )
    store = svc.store
    await store.create_job(
        job_id,
        provider,
        audio_url=None if recording_id else AUDIO_URL,
        recording_id=recording_id,
        options={},
        metadata=METADATA,
    )
    try:
        answer = await send(request, base)
    except SimulationError as exc:
        await store.mark_submit_failed(job_id, {"code": SimulationError.code, "message": exc.message})
        raise
    # a callback may already have finished the job: mark_submitted keeps that state
    await store.mark_submitted(
        job_id, provider_job_id, reconcile_at=time.time() + svc.settings.reconcile_after
    )
    return Outcome(
        callback_id=str(answer["id"]),
        duplicate=bool(answer.get("duplicate")),
        job_id=job_id,
        provider=provider,
        provider_job_id=provider_job_id,
        status=status,
        method=request.method,
        endpoint=f"{base}/callbacks/{provider}" + ("/<token>" if adapter.per_job_callbacks else ""),
        fetches_from=config.base_url if request.fetches else None,
    )


@click.command("simulate")
@click.argument("provider")
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    default="completed",
    show_default=True,
    help="How the simulated job ends.",
)
@click.option(
    "--target", metavar="URL", help="Base URL of the instance to call  [default: CALLBOARD_PUBLIC_URL]"
)
@json_option
def simulate_cmd(provider: str, status: str, target: str | None, as_json: bool) -> None:
    """Send a running instance a realistic, correctly authenticated PROVIDER callback.

    A job is recorded for it (metadata simulated=true); the callback then flows through
    verification, processing and fan-out like a real one.
    """
    outcome = with_service(lambda svc: simulate(svc, provider, status, target))
    if as_json:
        print_json(dataclasses.asdict(outcome))
        return
    click.echo(f"sent a simulated {provider} callback ({status}): {outcome.method} {outcome.endpoint}")
    click.echo(f"callback  {outcome.callback_id}" + ("  (duplicate)" if outcome.duplicate else ""))
    click.echo(
        f"job       {outcome.job_id}  (provider job {outcome.provider_job_id}, metadata simulated=true)"
    )
    if outcome.fetches_from:
        env = f"CALLBOARD_{provider.upper()}_BASE_URL"
        click.echo(
            f"note: {provider} callbacks carry no transcript; processing fetches {outcome.provider_job_id}"
            f" from {env} ({outcome.fetches_from}). The job completes only if that API knows this made-up"
            " id (a sandbox or a fake provider); until then the fetch is retried with backoff."
        )


def register(group: click.Group) -> None:
    group.add_command(simulate_cmd)
