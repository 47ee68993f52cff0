"""The fakes keep db/uow.py's promises: what the use-case tests rely on."""

from __future__ import annotations

import pytest

from tests.support.fakes import FakeSettings, fakes_of, make_ports


async def test_leaving_the_block_commits_and_dispatches_after_the_commit() -> None:
    # Given
    fake = fakes_of(make_ports())
    # When
    async with fake() as uow:
        await uow.settings_store.put("k", 1, "me")
        uow.dispatch([7, 8])
        dispatched_inside = list(fake.dispatched)
    # Then
    assert dispatched_inside == []
    assert fake.state.settings == {"k": 1}
    assert (uow.committed, uow.rolled_back, uow.dispatched_after_commit) == (True, False, [7, 8])
    assert fake.timeline == [("begin", 0), ("commit", 0), ("dispatch", [7, 8])]


async def test_an_error_in_the_block_rolls_back_every_write_and_dispatches_nothing() -> None:
    # Given
    fake = fakes_of(make_ports())
    source = fake.add_source()
    # When
    with pytest.raises(ValueError):
        async with fake() as uow:
            await uow.settings_store.put("k", 1)
            (await uow.sources.require(source.id or 0)).title = "changed"
            uow.dispatch([1])
            raise ValueError("boom")
    # Then
    assert fake.state.settings == {}
    assert fake.state.sources[source.id or 0].title == "A source"
    assert (uow.committed, uow.rolled_back, uow.dispatched_after_commit) == (False, True, [])
    assert fake.dispatched == []


async def test_a_read_only_unit_never_commits() -> None:
    # Given
    fake = fakes_of(make_ports())
    # When
    async with fake(read_only=True) as uow:
        await uow.settings_store.put("k", 1)
        uow.dispatch([1])
    # Then
    assert fake.state.settings == {}
    assert (uow.committed, fake.dispatched) == (False, [])


async def test_repositories_refuse_use_outside_the_block_and_nesting_is_refused() -> None:
    # Given
    fake = fakes_of(make_ports())
    uow = fake()
    # When / Then
    with pytest.raises(RuntimeError, match="outside"):
        await uow.keys.list()
    async with fake():
        with pytest.raises(RuntimeError, match="inside another"):
            async with fake():
                pass


async def test_retrying_runs_the_work_again_after_a_simulated_conflict() -> None:
    # Given
    fake = fakes_of(make_ports())
    fake.retry_conflicts = 2
    attempts = []

    async def work(uow):  # type: ignore[no-untyped-def]
        attempts.append(uow.number)
        await uow.settings_store.put("attempt", len(attempts))
        uow.dispatch([len(attempts)])
        return len(attempts)

    # When
    result = await fake.retrying(work)
    # Then
    assert (result, attempts, fake.state.settings, fake.dispatched) == \
        (3, [0, 1, 2], {"attempt": 3}, [3])


def test_make_ports_takes_settings_by_name_and_refuses_unknown_ones() -> None:
    # Given / When
    ports = make_ports(max_import_items=2)
    # Then
    assert ports.settings == FakeSettings(max_import_items=2)
    with pytest.raises(TypeError):
        make_ports(max_imports=2)
