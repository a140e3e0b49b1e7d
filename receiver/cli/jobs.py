"""`callboard submit` and `callboard jobs list|show`."""

from __future__ import annotations

import click

from receiver.api.views import job_view
from receiver.cli.common import json_option, parse_pairs, print_json, print_table, short_time, time_option, with_service
from receiver.exceptions import NotFoundError
from receiver.service import Service
from receiver.submission import submit_job
from storage.records import JobFilter


@click.command("submit")
@click.argument("provider")
@click.argument("audio_url", required=False)
@click.option("--recording-id", help="Recall recording to transcribe (instead of AUDIO_URL).")
@click.option("--option", "options", multiple=True, metavar="K=V", help="Provider-native option (JSON values allowed).")
@click.option("--metadata", "metadata", multiple=True, metavar="K=V", help="Metadata carried to the transcript.")
@json_option
def submit_cmd(
    provider: str, audio_url: str | None, recording_id: str | None, options: tuple[str, ...], metadata: tuple[str, ...],
    as_json: bool,
) -> None:  # fmt: skip
    """Submit AUDIO_URL to PROVIDER with Callboard's callback registered."""
    opts = parse_pairs(options, what="--option", json_values=True)
    meta = parse_pairs(metadata, what="--metadata", json_values=False)

    async def go(svc: Service) -> dict[str, object]:
        job = await submit_job(
            svc, provider, audio_url=audio_url, recording_id=recording_id, options=opts, metadata=meta
        )
        return job_view(job)

    view = with_service(go)
    if as_json:
        print_json(view)
    else:
        click.echo(f"{view['id']}  {provider}  {view['status']}  provider job {view['provider_job_id']}")


@click.group("jobs")
def jobs_group() -> None:
    """Transcription jobs and their state."""


@jobs_group.command("list")
@click.option("--provider")
@click.option("--status", type=click.Choice(["submitting", "submitted", "completed", "failed"]))
@time_option("--since", "Created at or after")
@time_option("--until", "Created before")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--cursor", help="Continue after this job id (from a previous page).")
@json_option
def jobs_list(
    provider: str | None, status: str | None, since: float | None, until: float | None, limit: int, cursor: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """List jobs, newest first."""

    async def go(svc: Service) -> tuple[list[dict[str, object]], str | None]:
        page = await svc.store.list_jobs(JobFilter(provider, status, since, until), cursor=cursor, limit=limit)
        return [job_view(j) for j in page.items], page.next_cursor

    items, next_cursor = with_service(go)
    if as_json:
        print_json({"object": "list", "data": items, "has_more": next_cursor is not None, "next_cursor": next_cursor})
        return
    rows = [(j["id"], j["provider"], j["status"], j["provider_job_id"], short_time(str(j["created"]))) for j in items]
    print_table(None, ["id", "provider", "status", "provider job", "created"], rows, empty="no jobs")
    if next_cursor:
        click.echo(f"more: --cursor {next_cursor}")


@jobs_group.command("show")
@click.argument("job_id")
@json_option
def jobs_show(job_id: str, as_json: bool) -> None:
    """Show one job, with its transcript once there is one."""

    async def go(svc: Service) -> dict[str, object]:
        job = await svc.store.get_job(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}")
        view = job_view(job, await svc.store.get_transcript(job_id))
        view.setdefault("transcript", None)
        return view

    view = with_service(go)
    if as_json:
        print_json(view)
        return
    for key in (
        "id",
        "provider",
        "provider_job_id",
        "status",
        "audio_url",
        "created",
        "completed_at",
        "metadata",
        "error",
    ):
        click.echo(f"{key:>16}: {view.get(key)}")
    transcript = view.get("transcript")
    if isinstance(transcript, dict):
        click.echo(
            f"{'transcript':>16}: {transcript.get('id')} ({transcript.get('language')}, {transcript.get('duration')} s)"
        )
        click.echo(f"\n{transcript.get('text')}")


def register(group: click.Group) -> None:
    group.add_command(submit_cmd)
    group.add_command(jobs_group)
