"""Routes for users."""

from fastapi import APIRouter

router = APIRouter()
