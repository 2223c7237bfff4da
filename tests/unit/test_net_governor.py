"""The connection governor against simulated servers: each row a world, each a verdict."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sa1b.net.governor import Governor, GovernorPolicy

POLICY = GovernorPolicy(start=8, ceiling=256, minimum=2)
TICK = 0.1


def simulate(
    policy: GovernorPolicy,
    throughput: Callable[[float, int], float],
    *,
    seconds: float,
    pushback: Callable[[float, int], bool] = lambda now, n: False,
    busy: Callable[[float, int], int] = lambda now, n: n,
) -> list[int]:
    """Run the governor against ``throughput(now, connections)`` bytes/s; the targets seen."""
    governor = Governor(policy, now=0.0)
    received, now, seen = 0.0, 0.0, []
    while now < seconds:
        now += TICK
        received += throughput(now, governor.target) * TICK
        if pushback(now, governor.target):
            governor.pushback(now)
        seen.append(governor.observe(now, int(received), busy(now, governor.target)))
    return seen


def per_connection_cap(rate: float, link: float) -> Callable[[float, int], float]:
    """Each connection carries ``rate`` until the link (``link``) is full."""
    return lambda now, n: min(n * rate, link)


def steps(seen: list[int]) -> list[int]:
    """The counts the governor went through, in order."""
    return [count for i, count in enumerate(seen) if i == 0 or seen[i - 1] != count]


def test_a_per_connection_cap_grows_to_the_ceiling_quickly() -> None:
    seen = simulate(POLICY, per_connection_cap(2e6, 1e12), seconds=6)
    assert seen[-1] == 256
    assert steps(seen) == [8, 16, 64, 256]  # x2, then x4 after each step that paid in full
    assert seen.index(256) * TICK < 2  # the leaps judged after half a window


def test_a_step_that_pays_less_than_in_proportion_is_followed_by_a_doubling() -> None:
    """A link that 80 connections fill: 32 to 64 pays 2x (in full), the leap to 256 pays
    1.25x, so the next step doubles, brings nothing and is taken back."""
    policy = GovernorPolicy(start=32, ceiling=1024, minimum=2)
    seen = simulate(policy, per_connection_cap(2e6, 160e6), seconds=10)
    assert steps(seen) == [32, 64, 256, 512, 256]
    assert set(seen[-40:]) == {256}


def test_a_full_link_stops_the_growth_and_the_useless_step_is_taken_back() -> None:
    seen = simulate(POLICY, per_connection_cap(2e6, 100e6), seconds=10)
    # 50 connections fill the link: 8 to 16 paid in full, the leap to 64 paid 3.1x of
    # 4x, 64 to 128 paid nothing and is taken back.
    assert steps(seen) == [8, 16, 64, 128, 64]
    assert set(seen[-40:]) == {64}


def test_a_cpu_bound_machine_holds_where_more_brings_nothing() -> None:
    seen = simulate(POLICY, lambda now, n: 700e6, seconds=10)
    assert set(seen[-50:]) == {8}


def test_it_reprobes_after_holding_and_finds_new_room() -> None:
    seen = simulate(POLICY, lambda now, n: min(n * 2e6, 40e6 if now < 10 else 400e6), seconds=60)
    assert seen[80] <= 64  # held near the first limit (20 connections), a leap above it
    assert seen[-1] > 128  # found the wider link on a later probe


def test_pushback_cuts_the_count_and_forbids_growth_for_a_while() -> None:
    governor = Governor(POLICY, now=0.0)
    received = 0
    now = 0.0
    while governor.target < 64:
        now += TICK
        received += int(governor.target * 2e6 * TICK)
        governor.observe(now, received, governor.target)
    governor.pushback(now)
    assert governor.target == 48
    governor.pushback(now + 0.1)  # the same burst: counted once
    assert governor.target == 48
    quiet_end = now + POLICY.quiet
    while now < quiet_end - TICK:
        now += TICK
        received += int(governor.target * 2e6 * TICK)
        assert governor.observe(now, received, governor.target) == 48


def test_repeated_pushback_never_goes_below_the_minimum() -> None:
    governor = Governor(POLICY, now=0.0)
    for second in range(100):
        governor.pushback(float(second))
    assert governor.target == POLICY.minimum


def test_idle_connections_are_no_evidence() -> None:
    """At a run's tail half the connections have no work: never judged a limit."""
    seen = simulate(POLICY, lambda now, n: 1e6, seconds=10, busy=lambda now, n: n // 2)
    assert set(seen) == {8}


def test_a_fixed_count_never_moves() -> None:
    fixed = GovernorPolicy.fixed(12)
    seen = simulate(fixed, per_connection_cap(2e6, 1e12), seconds=5, pushback=lambda t, n: True)
    assert set(seen) == {12}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": 0},
        {"start": 10, "ceiling": 5},
        {"minimum": 20, "start": 10},
        {"growth": 1.0},
        {"growth": 4.0, "leap": 2.0},
        {"backoff": 1.0},
    ],
)
def test_policies_that_cannot_work_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        GovernorPolicy(**kwargs)  # type: ignore[arg-type]
