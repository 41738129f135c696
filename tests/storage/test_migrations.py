"""Schema migrations: an existing installation upgrades in place; models match migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel

from storage.db import HEAD_REVISION, alembic_config, make_engine, migrate, schema_revision
from storage.models.media import Camera, Original


def test_upgrade_in_place_keeps_data(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "0001")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO camera (id, name, district, latitude, longitude, agency, timezone,"
                " allowed_agencies, created_at) VALUES ('CAM-001', 'Maidan', 'Shevchenkivskyi',"
                " 50.45, 30.52, 'police', 'Europe/Kyiv', '[]', :now)"), {"now": datetime.now(UTC)})
            conn.execute(text(
                "INSERT INTO original (sha256, camera_id, filename, size_bytes, container,"
                " video_codec, width, height, fps, variable_frame_rate, duration_s,"
                " recording_start_utc, timezone, start_source, damaged, decodable_duration_s,"
                " damage_reason, status, ingested_at) VALUES (:sha, 'CAM-001', 'a.mp4', 10,"
                " 'mp4', 'h264', 320, 180, 25, false, 12, :start, 'Europe/Kyiv', 'filename',"
                " false, 12, '', 'ready', :now)"),
                {"sha": "a" * 64, "start": datetime(2026, 1, 25, 8, tzinfo=UTC),
                 "now": datetime.now(UTC)})
        migrate(engine)
        with Session(engine) as session:
            camera = session.get(Camera, "CAM-001")
            assert camera is not None and camera.name == "Maidan"
            original = session.get(Original, 1)
            assert original is not None
            assert original.recording_start_utc == datetime(2026, 1, 25, 8, tzinfo=UTC)
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_models_match_migrations_at_head(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        engine.dispose()


def test_migrating_twice_is_a_no_op(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version is not None
    finally:
        engine.dispose()


def test_the_head_constant_is_alembics_head_and_an_empty_database_has_no_revision(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        assert ScriptDirectory.from_config(alembic_config(engine)).get_current_head() \
            == HEAD_REVISION
        assert schema_revision(engine) is None
        migrate(engine, "0005")
        assert schema_revision(engine) == "0005"
        migrate(engine)  # not at the head yet: Alembic runs the last step
        assert schema_revision(engine) == HEAD_REVISION
        migrate(engine)  # at the head: nothing to do
        assert schema_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()
