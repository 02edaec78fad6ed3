"""The staging dialect (spec 000): staging environments through webhook-triggered flows."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
