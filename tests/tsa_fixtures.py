"""Pytest fixtures for the real test TSA (``tests.tsa_service``), registered in conftest.

- ``tsa_service``: a running TSA for the session (``.url``, ``.ca_cert_path``);
- ``untrusted_tsa``: another running TSA under a different CA, for "not trusted";
- ``down_tsa``: a TSA whose port is closed for the test (``.start()`` brings it up).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tsa_service import TsaService, start_tsa


@pytest.fixture(scope="session")
def tsa_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaService]:
    service = start_tsa(tmp_path_factory.mktemp("tsa"), label="Oko test TSA")
    yield service
    service.stop()


@pytest.fixture
def running_tsa(tsa_service: TsaService) -> TsaService:
    """``tsa_service``, started again should an earlier test have left it stopped."""
    tsa_service.start()
    return tsa_service


@pytest.fixture(scope="session")
def untrusted_tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaService]:
    service = start_tsa(tmp_path_factory.mktemp("tsa-untrusted"), label="Stranger TSA")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def _spare_tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaService]:
    service = start_tsa(tmp_path_factory.mktemp("tsa-spare"), label="Spare TSA")
    yield service
    service.stop()


@pytest.fixture
def down_tsa(_spare_tsa: TsaService) -> Iterator[TsaService]:
    """A TSA that is down: nothing listens on ``.url`` until the test calls ``.start()``."""
    _spare_tsa.stop()
    yield _spare_tsa
    _spare_tsa.stop()
