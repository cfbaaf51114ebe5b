"""The principal cache on its own: entries live ``ttl`` seconds, the least recently used go first."""

import pytest

from backendai_hub.service.principals import Credential, PrincipalCache
from backendai_hub.service.rules import USER, Principal


def cred(name: str) -> Credential:
    return Credential(Principal(username=name, role=USER, domain="default", via="keypair",
                                access_key=f"AK{name}"), b"token", "secret")


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def test_an_entry_lives_for_its_ttl_and_no_longer():
    clock = Clock()
    cache = PrincipalCache(ttl=5, clock=clock)
    cache.put("a", cred("a"))
    clock.now += 4.9
    assert cache.get("a") == cred("a")
    clock.now += 0.1
    assert cache.get("a") is None and len(cache) == 0


def test_putting_again_renews_the_entry():
    clock = Clock()
    cache = PrincipalCache(ttl=5, clock=clock)
    cache.put("a", cred("a"))
    clock.now += 4
    cache.put("a", cred("a2"))
    clock.now += 4
    assert cache.get("a") == cred("a2")


def test_the_least_recently_used_entry_goes_first_when_full():
    cache = PrincipalCache(ttl=60, max_entries=2)
    cache.put("a", cred("a"))
    cache.put("b", cred("b"))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", cred("c"))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2


def test_forget():
    cache = PrincipalCache()
    cache.put("a", cred("a"))
    cache.forget("a")
    cache.forget("never there")
    assert cache.get("a") is None


@pytest.mark.parametrize("kwargs", [{"ttl": 0}, {"ttl": -1}, {"max_entries": 0}])
def test_nonsense_bounds_are_refused(kwargs):
    with pytest.raises(ValueError):
        PrincipalCache(**kwargs)
