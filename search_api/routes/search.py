"""Routes for search."""

from fastapi import APIRouter

router = APIRouter()
