"""Routes for verify."""

from fastapi import APIRouter

router = APIRouter()
