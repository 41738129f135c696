"""Routes for cameras."""

from fastapi import APIRouter

router = APIRouter()
