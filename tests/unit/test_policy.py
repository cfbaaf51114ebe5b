"""Table-driven tests of the pure policy module: parsing, effective limits, admission."""

from decimal import Decimal as D

import pytest

from backendai_hub.policy import (
    Level,
    SlotError,
    Usage,
    admit,
    effective_limits,
    effective_max_sessions,
    format_slots,
    parse_slots,
    slots_from_json,
    slots_to_json,
    subtract_slots,
)

G = 1024 ** 3


@pytest.mark.parametrize("text, expected", [
    ("cpu=2", {"cpu": D(2)}),
    ("cpu=2.5", {"cpu": D("2.5")}),
    ("mem=4g", {"mem": D(4 * G)}),
    ("mem=512m", {"mem": D(512 * 1024 ** 2)}),
    ("mem=1GiB", {"mem": D(G)}),
    ("mem=1.5g", {"mem": D(int(1.5 * G))}),
    ("mem=1024", {"mem": D(1024)}),
    ("cpu=1, mem=2g ,cuda.device=1", {"cpu": D(1), "mem": D(2 * G), "cuda.device": D(1)}),
    ("cuda.shares=0.5", {"cuda.shares": D("0.5")}),
    ("cuda.device:1g.10gb-mig=1", {"cuda.device:1g.10gb-mig": D(1)}),
    ("", {}),
    ({"cpu": 2, "mem": "4g"}, {"cpu": D(2), "mem": D(4 * G)}),
    ({"cpu": 0.25}, {"cpu": D("0.25")}),
    (None, {}),
])
def test_parse_slots_accepts(text, expected):
    assert parse_slots(text, allow_zero=False) == expected


@pytest.mark.parametrize("text, field, fragment", [
    ("mem=12X", "resources.mem", "is not an amount"),
    ("cpu=4g", "resources.cpu", "unit suffixes are only allowed for memory"),
    ("cpu=-1", "resources.cpu", "is not an amount"),
    ({"cpu": -1}, "resources.cpu", "is negative"),
    ({"cpu": float("inf")}, "resources.cpu", "not a finite amount"),
    ({"cpu": float("nan")}, "resources.cpu", "not a finite amount"),
    ({"cpu": True}, "resources.cpu", "is not an amount"),
    ({"cpu": None}, "resources.cpu", "is not an amount"),
    ("cpu", "resources", "not of the form slot=amount"),
    ("CPU=1", "resources", "not a valid resource slot name"),
    ("cpu=1,cpu=2", "resources", "given twice"),
    ("mem=", "resources.mem", "is not an amount"),
    ("1cpu=1", "resources", "not a valid resource slot name"),
    ([("cpu", 1)], "resources", "must be a mapping"),
])
def test_parse_slots_rejects(text, field, fragment):
    with pytest.raises(SlotError) as e:
        parse_slots(text)
    assert e.value.field == field
    assert fragment in str(e.value)


@pytest.mark.parametrize("text", ["cpu=0", "mem=0g", {"cuda.device": 0}])
def test_zero_is_a_limit_but_not_a_request(text):
    assert list(parse_slots(text, allow_zero=True).values()) == [D(0)]
    with pytest.raises(SlotError, match="greater than zero"):
        parse_slots(text, allow_zero=False)


def test_json_round_trip_is_exact():
    slots = parse_slots("cpu=0.1,mem=3g,cuda.shares=0.3333")
    assert slots_to_json(slots) == {"cpu": "0.1", "cuda.shares": "0.3333", "mem": str(3 * G)}
    assert slots_from_json(slots_to_json(slots)) == slots
    assert format_slots(slots) == "cpu=0.1,cuda.shares=0.3333,mem=3g"
    assert format_slots({}) == "-"


def lv(kind, slots="", sessions=None, name=None):
    return Level(kind, name or kind[0], parse_slots(slots), sessions)


def use(slots="", sessions=0):
    return Usage(parse_slots(slots), sessions)


@pytest.mark.parametrize("levels, expected", [
    ([], {}),
    ([lv("keypair"), lv("group"), lv("domain")], {}),  # all unlimited
    ([lv("keypair", "cpu=4"), lv("group"), lv("domain", "cpu=8")], {"cpu": D(4)}),
    ([lv("keypair", "cpu=4,mem=8g"), lv("group", "mem=2g"), lv("domain", "cuda.device=1")],
     {"cpu": D(4), "mem": D(2 * G), "cuda.device": D(1)}),
    ([lv("keypair", "cuda.device=0"), lv("domain", "cuda.device=4")], {"cuda.device": D(0)}),
])
def test_effective_limits_is_minimum_and_unset_is_unlimited(levels, expected):
    assert effective_limits(levels) == expected


def test_effective_max_sessions():
    assert effective_max_sessions([lv("keypair"), lv("group")]) is None
    assert effective_max_sessions([lv("keypair", sessions=3), lv("group", sessions=1)]) == 1


ADMISSION = [
    # (name, request, [(level, usage)...], allowed, denying level, slot, reason fragment)
    ("all unlimited", "cpu=64,mem=1024g", [(lv("keypair"), use()), (lv("group"), use()), (lv("domain"), use())],
     True, None, None, ""),
    ("fits everywhere", "cpu=2,mem=4g",
     [(lv("keypair", "cpu=4,mem=8g"), use("cpu=2,mem=4g")), (lv("group", "cpu=8"), use("cpu=6")),
      (lv("domain", "mem=16g"), use("mem=12g"))], True, None, None, ""),
    ("keypair denies cpu", "cpu=3",
     [(lv("keypair", "cpu=4", name="AKIATEST"), use("cpu=2")), (lv("group"), use()), (lv("domain"), use())],
     False, "keypair", "cpu", "keypair 'AKIATEST' allows cpu=4, 2 in use, 3 requested"),
    ("group denies gpu", "cuda.device=1",
     [(lv("keypair"), use()), (lv("group", "cuda.device=2", name="ml"), use("cuda.device=2")),
      (lv("domain"), use())],
     False, "group", "cuda.device", "group 'ml' allows cuda.device=2, 2 in use, 1 requested"),
    ("domain denies mem", "mem=4g",
     [(lv("keypair"), use()), (lv("group"), use()), (lv("domain", "mem=16g", name="acme"), use("mem=14g"))],
     False, "domain", "mem", "domain 'acme' allows mem=16g, 14g in use, 4g requested"),
    ("zero limit forbids the slot", "cuda.device=1",
     [(lv("keypair", "cuda.device=0"), use()), (lv("group"), use()), (lv("domain"), use())],
     False, "keypair", "cuda.device", "allows cuda.device=0, 0 in use, 1 requested"),
    ("exactly at the limit is allowed", "cpu=2",
     [(lv("keypair", "cpu=4"), use("cpu=2")), (lv("group", "cpu=2"), use()), (lv("domain"), use())],
     True, None, None, ""),
    ("fractional sum over the limit", "cpu=0.5",
     [(lv("keypair", "cpu=1"), use("cpu=0.75")), (lv("group"), use()), (lv("domain"), use())],
     False, "keypair", "cpu", "allows cpu=1, 0.75 in use, 0.5 requested"),
    ("session count at keypair", "cpu=1",
     [(lv("keypair", sessions=2, name="AKIAX"), use(sessions=2)), (lv("group"), use()), (lv("domain"), use())],
     False, "keypair", "sessions", "keypair 'AKIAX' allows 2 concurrent sessions, 2 running"),
    ("single session wording", "cpu=1",
     [(lv("keypair", sessions=1), use(sessions=1))], False, "keypair", "sessions", "allows 1 concurrent session,"),
    ("zero sessions allowed", "cpu=1",
     [(lv("keypair", sessions=0), use())], False, "keypair", "sessions", "allows 0 concurrent sessions"),
    ("first failing level in order is named", "cpu=10",
     [(lv("keypair", "cpu=4"), use()), (lv("group", "cpu=2"), use()), (lv("domain", "cpu=1"), use())],
     False, "keypair", "cpu", "keypair"),
    ("slot unlimited at this level, limited at next", "cuda.device=3",
     [(lv("keypair", "cpu=4"), use()), (lv("group"), use()), (lv("domain", "cuda.device=2"), use())],
     False, "domain", "cuda.device", "domain 'd' allows cuda.device=2, 0 in use, 3 requested"),
    ("usage of other slots does not matter", "cpu=1",
     [(lv("keypair", "cpu=4,mem=1g"), use("mem=1g"))], True, None, None, ""),
]


@pytest.mark.parametrize("name, request_, levels, allowed, level, slot, fragment", ADMISSION,
                         ids=[row[0] for row in ADMISSION])
def test_admission(name, request_, levels, allowed, level, slot, fragment):
    decision = admit(parse_slots(request_, allow_zero=False), levels)
    assert bool(decision) is allowed
    assert decision.level == level
    assert decision.slot == slot
    assert fragment in decision.reason


def test_unknown_slot_is_denied_when_the_hub_knows_its_slots():
    decision = admit(parse_slots("tpu.device=1"), [(lv("keypair"), use())], known_slots={"cpu", "mem"})
    assert not decision
    assert decision.slot == "tpu.device"
    assert "unknown resource slot 'tpu.device'" in decision.reason
    assert "cpu, mem" in decision.reason
    # a limit on a slot nobody requests does not matter
    assert admit(parse_slots("cpu=1"), [(lv("keypair", "tpu.device=1"), use())], known_slots={"cpu"})


@pytest.mark.parametrize("amount", [D(0), D(-1)])
def test_admission_refuses_non_positive_requests_even_if_constructed_directly(amount):
    decision = admit({"cpu": amount}, [(lv("keypair"), use())])
    assert not decision and "must be greater than zero" in decision.reason


def test_release_never_goes_negative():
    assert subtract_slots(parse_slots("cpu=1,mem=1g"), parse_slots("cpu=2")) == {"mem": D(G)}
