"""API keys use cases (domain/services/keys.py) against in-memory fakes."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.services import keys
from tests.support.fakes import fakes_of, make_ports


@pytest.mark.parametrize("role", ["viewer", "editor", "operator"])
async def test_create_key_stores_a_key_with_its_role_and_trimmed_name(role: str) -> None:
    # Given
    ports = make_ports()
    # When
    issued = await keys.create_key(ports, "  ci bot  ", role)
    # Then
    fake = fakes_of(ports)
    assert (issued.name, issued.role) == ("ci bot", role)
    assert issued.secret
    assert fake.state.keys[issued.id].name == "ci bot"
    assert [u.committed for u in fake.units] == [True]


async def test_create_key_refuses_an_unknown_role_naming_the_role_field() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await keys.create_key(ports, "bot", "admin")
    # Then
    assert [i.path for i in caught.value.issues] == [("role",)]
    assert fakes_of(ports).units == []


async def test_create_key_checks_the_role_before_the_name() -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await keys.create_key(ports, "   ", "root")
    # Then
    assert [i.path for i in caught.value.issues] == [("role",)]


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
async def test_create_key_refuses_a_blank_name(name: str) -> None:
    # Given
    ports = make_ports()
    # When
    with pytest.raises(InvalidInput) as caught:
        await keys.create_key(ports, name, "viewer")
    # Then
    assert [i.path for i in caught.value.issues] == [("name",)]
    assert fakes_of(ports).state.keys == {}
    assert fakes_of(ports).units == []


@pytest.mark.parametrize("ident", ["", "  "])
async def test_revoke_key_refuses_a_blank_identifier(ident: str) -> None:
    # Given
    ports = make_ports()
    fakes_of(ports).add_key("bot")
    # When
    with pytest.raises(InvalidInput) as caught:
        await keys.revoke_key(ports, ident)
    # Then
    assert [i.path for i in caught.value.issues] == [("key",)]
    assert not any(k.revoked for k in fakes_of(ports).state.keys.values())
    assert fakes_of(ports).units == []


async def test_revoke_key_revokes_the_matching_keys_by_trimmed_identifier() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    bot = fake.add_key("bot")
    other = fake.add_key("other")
    # When
    revoked = await keys.revoke_key(ports, "  bot ")
    # Then
    assert revoked == 1
    assert fake.state.keys[bot.id].revoked
    assert not fake.state.keys[other.id].revoked
    assert fake.called("keys.revoke") == [(("bot",), {})]
    assert [u.committed for u in fake.units] == [True]


async def test_revoke_key_answers_zero_when_nothing_matches() -> None:
    # Given
    ports = make_ports()
    fakes_of(ports).add_key("bot")
    # When
    revoked = await keys.revoke_key(ports, "nobody")
    # Then
    assert revoked == 0


async def test_list_keys_reads_every_key_in_a_read_only_unit_of_work() -> None:
    # Given
    ports = make_ports()
    fake = fakes_of(ports)
    fake.add_key("a", "viewer")
    fake.add_key("b", "operator")
    # When
    listed = await keys.list_keys(ports)
    # Then
    assert [(k.name, k.role) for k in listed] == [("a", "viewer"), ("b", "operator")]
    assert not hasattr(listed[0], "secret")
    assert [u.read_only for u in fake.units] == [True]
