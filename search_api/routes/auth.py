"""Routes for auth."""

from fastapi import APIRouter

router = APIRouter()
