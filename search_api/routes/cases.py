"""Routes for cases."""

from fastapi import APIRouter

router = APIRouter()
