"""flowdeck approvals over HTTP (an extension next to the Kestra routes)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
