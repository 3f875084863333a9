import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.agent.commands import CommandError, CommandRouter, request
from edge_agent.publish.payloads import TriggerRequest


def make_router():
    replies = []
    state = {"triggers": []}

    def trigger(args):
        part = request(TriggerRequest, args).part_id
        state["triggers"].append(part)
        return {"part_id": part}

    router = CommandRouter(lambda name, body, _to: replies.append((f"cmd/{name}/reply", body)), lambda: "now")
    router.register("trigger", trigger)
    return router, replies, state


def test_valid_command_acts_and_replies():
    router, replies, state = make_router()
    reply = router.handle("trigger", b'{"part_id": "A1"}')
    assert reply["ok"]
    assert state["triggers"] == ["A1"]
    assert replies == [("cmd/trigger/reply", reply)]
    assert router.handle("trigger", b"")["ok"]


def test_registering_twice_is_refused():
    router, _, _ = make_router()
    with pytest.raises(ValueError, match="twice"):
        router.register("trigger", lambda a: None)


def test_handler_crash_is_a_reply_not_a_crash():
    router, _replies, _ = make_router()

    def broken(args):
        raise RuntimeError("boom")

    router.register("explode", broken)
    reply = router.handle("explode", b"{}")
    assert not reply["ok"]
    assert "boom" in reply["error"]


@settings(max_examples=300, deadline=None)
@given(
    payload=st.one_of(
        st.binary(max_size=300),
        st.binary(min_size=17_000, max_size=20_000),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    name=st.sampled_from(["trigger", "reload", "x" * 300, "", "trigger/reply"]),
)
def test_fuzzed_commands_always_reply_and_only_valid_ones_act(payload, name):
    router, replies, state = make_router()
    reply = router.handle(name, payload)
    assert len(replies) == 1
    assert replies[0][1] is reply
    assert isinstance(reply["ok"], bool)
    if reply["ok"]:
        assert name == "trigger"
        assert len(state["triggers"]) == 1
    else:
        assert reply["error"]
        assert state["triggers"] == []
    json.dumps(reply)  # always publishable


def test_command_error_messages():
    router, _, _ = make_router()
    assert "unknown command" in router.handle("reboot", b"")["error"]
    assert "JSON object" in router.handle("trigger", b"[1]")["error"]
    assert "not UTF-8 JSON" in router.handle("trigger", b"{")["error"]
    assert "part_id" in router.handle("trigger", b'{"part_id": 3}')["error"]
    assert "larger than" in router.handle("trigger", b" " * 20_000)["error"]
    assert isinstance(CommandError("x"), Exception)


def test_a_deferred_command_replies_once_when_it_finishes_and_keeps_the_reply_address():
    replies = []
    finishers = []
    router = CommandRouter(lambda name, body, to: replies.append((name, body, to)), lambda: "now")
    router.register_deferred("reload", lambda args, finish: finishers.append(finish))
    assert router.handle("reload", b"{}", "reply-address") is None
    assert replies == [], "no reply before the work is done"
    finishers[0]({"name": "m"}, None)
    assert replies == [
        (
            "reload",
            {"command": "reload", "ok": True, "error": None, "detail": {"name": "m"}, "ts": "now"},
            "reply-address",
        )
    ]
    router.handle("reload", b"[]", "again")
    assert replies[-1][1]["ok"] is False, "a malformed deferred command is refused at once"
