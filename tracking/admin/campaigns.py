"""Campaigns: the list with progress, one campaign's figures, and who opened, clicked or
bounced as CSV."""

from __future__ import annotations

from flask import Response, abort

from mailer.console_campaigns import EXPORTABLE, CampaignQueries
from tracking.admin.core import bp, conn, render


@bp.get("/campaigns")
def campaigns() -> str:
    return render("campaigns.html", rows=CampaignQueries(conn()).list())


@bp.get("/campaigns/<path:name>/<any(open, click, bounce, complaint, unsubscribe):kind>.csv")
def campaign_csv(name: str, kind: str) -> Response:
    if CampaignQueries(conn()).report(name) is None:
        abort(404, "no such campaign")
    lines = list(CampaignQueries(conn()).recipients_csv(name, kind))
    filename = f"campaign-{kind}.csv"
    return Response(
        "".join(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/campaigns/<path:name>")
def campaign(name: str) -> str:
    report = CampaignQueries(conn()).report(name)
    if report is None:
        abort(404, "no such campaign")
    return render("campaign.html", name=name, r=report, exportable=EXPORTABLE)
