"""`/`: the web console's page (the Companion, or any Worker named by `?runtime=&worker=`), and
`/fleet`: the fleet dashboard. Their files are mounted at `/static` by the app."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@router.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    """Open without a token: the page asks for one when the API answers 401."""
    page = resources.files("gateway").joinpath("static", "index.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/fleet", response_class=HTMLResponse)
async def fleet() -> HTMLResponse:
    """The fleet dashboard; like the console, it asks for a token when the API answers 401."""
    page = resources.files("gateway").joinpath("static", "fleet.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers=PAGE_HEADERS)
