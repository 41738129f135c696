"""Routes for jobs."""

from fastapi import APIRouter

router = APIRouter()
