"""Continuous recording: one supervised ffmpeg per camera stream, and watch folders.

``recorder`` records one camera into fixed-length files and ingests each; ``pool`` runs
one recorder per camera with a stream URL; ``watch`` ingests what an NVR drops in a
folder; ``ffmpeg`` builds the recording command and reads what it reports.
"""
