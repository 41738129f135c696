"""Redacted disclosure copies: detect faces and plates on every frame, track, review, mask.

Modules, bottom up: ``detect`` (pretrained ONNX detectors), ``tracking`` (tracks with
held and interpolated boxes), ``render`` (blur or fill, irreversible and idempotent),
``video`` (decode, re-encode H.264), ``review`` (decisions), ``pipeline`` (propose and
render). ``evidence.disclosure`` builds the signed bundle from an approved redaction.
"""
