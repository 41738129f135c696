"""Licence-plate reading: grammar, reader (PP-OCRv4 via rapidocr), sightings, test footage.

Nothing here imports onnxruntime or rapidocr at import time; ``PlateReader`` loads them.
"""
