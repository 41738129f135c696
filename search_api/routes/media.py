"""Routes for media."""

from fastapi import APIRouter

router = APIRouter()
