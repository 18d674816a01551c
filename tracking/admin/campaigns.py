"""Campaigns: the list with progress, one campaign's figures
(:func:`mailer.campaign_stats.campaign_summary`), pause, resume and cancel
(:class:`mailer.campaigns.CampaignManager`, audited), and who opened, clicked or bounced
as CSV."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, url_for

from mailer.campaign_stats import campaign_summary
from mailer.campaigns import Campaign, CampaignConflict, CampaignManager, CampaignNotFound
from mailer.console_campaigns import CampaignQueries
from mailer.console_queries import counted_at
from tracking.admin.core import audit, bp, conn, render
from tracking.admin.snapshots import snapshots


@bp.get("/campaigns")
def campaigns() -> str:
    rows, snapshot = CampaignQueries(conn()).list(snapshots())
    return render("campaigns.html", rows=rows, counted=counted_at(snapshot))


def _campaign(name: str) -> Campaign:
    found = CampaignManager(conn()).get(name) if len(name) <= 1000 else None
    if found is None:
        abort(404, "no such campaign")
    return found


@bp.get("/campaigns/<path:name>/<any(open, click, bounce, complaint, unsubscribe):kind>.csv")
def campaign_csv(name: str, kind: str) -> Response:
    _campaign(name)
    return Response(
        "".join(CampaignQueries(conn()).recipients_csv(name, kind)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="campaign-{kind}.csv"'},
    )


@bp.get("/campaigns/<path:name>")
def campaign(name: str) -> str:
    found = _campaign(name)
    summary = campaign_summary(conn(), name)
    return render("campaign.html", c=found, s=summary)


@bp.post("/campaigns/<path:name>/<any(pause, resume, cancel):action>")
def campaign_action(name: str, action: str) -> Response:
    before = _campaign(name).state
    manager = CampaignManager(conn())
    try:
        if action == "cancel":
            after, rows = manager.cancel(name)
            flash(f"Campaign {name} cancelled: {rows} queued messages cancelled.")
        else:
            after = manager.pause(name) if action == "pause" else manager.resume(name)
            flash(f"Campaign {name} is {after.state}.")
    except (CampaignConflict, CampaignNotFound) as exc:
        flash(f"Not done: {exc}.")
        return redirect(url_for("admin.campaign", name=name), 303)
    audit(
        f"campaign.{action}",
        f"campaign {name}",
        before={"state": before},
        after={"state": after.state},
    )
    return redirect(url_for("admin.campaign", name=name), 303)
