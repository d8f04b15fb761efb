"""Migration 0007: identifiers once cut at their first colon are cut again at the last one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from hub.domain.identity import PatientId
from hub.domain.persons import parse_identifier
from hub.services.alerts import AlertService
from hub.storage import migrate
from hub.storage.database import Database

pytestmark = [pytest.mark.db]


async def test_urn_and_url_authorities_kept_under_their_scheme_are_repaired(db_url: str) -> None:
    db = Database(db_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(migrate._alembic_config(sync), "0012"))
            await conn.execute(sa.text(
                "INSERT INTO persons (id, case_ref, display_name, referent, opened_at, setting) "
                "VALUES (1, 'R-2026-0001', 'Jeanne', '@cm:x', CURRENT_TIMESTAMP, 'home')"))
            await conn.execute(sa.text(
                "INSERT INTO person_identifiers (person_id, authority, value) VALUES "
                "(1, 'urn', 'oid:1.2.250.1.999.4.4:F8001'), (1, 'https', '//chu-x.example.fr/p:F8002'), "
                "(1, 'CHU-X', '910028'), (1, 'urn', 'isbn')"))
        await migrate.upgrade(db.engine)
        async with db.unit() as uow:
            person = await uow.persons.get("R-2026-0001")
        assert person is not None
        assert sorted(i.label() for i in person.identifiers) == sorted([
            "urn:oid:1.2.250.1.999.4.4:F8001", "https://chu-x.example.fr/p:F8002", "CHU-X:910028", "urn:isbn"])
        # A URL longer than the former 64 characters now fits.
        long_url = parse_identifier("https://hopital-exemple.fr/fhir/NamingSystem/identifiant-patient-local-2026:F1")
        async with db.unit() as uow:
            await uow.persons.add_identifiers("R-2026-0001", [long_url])
        async with db.unit() as uow:
            person = await uow.persons.get("R-2026-0001")
        assert person is not None and long_url in person.identifiers
        assert AlertService(db, None, {}, ins_test_oids=False)._matches(  # type: ignore[arg-type]
            person.identifiers, (PatientId("F8001", "", "1.2.250.1.999.4.4"),))
    finally:
        await db.close()
