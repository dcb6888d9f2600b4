"""Idle-GPU policy: defaults, parsing of every field, and the tracker's reclaim chain."""

from __future__ import annotations

import signal as _signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.errors import ValidationError
from corral.monitor.idle import (
    ACTIONS,
    FIELDS,
    IdlePolicy,
    IdleTracker,
    IdleVerdict,
    parse_actions,
    parse_idle,
    parse_signal,
    parse_threshold,
)

PATH = "spec.idleGpu"


def failure(func, value, path: str = PATH) -> ValidationError:
    """The ValidationError ``func(value, path)`` raises; its message is one line naming ``path``."""
    with pytest.raises(ValidationError) as info:
        func(value, path)
    message = str(info.value)
    assert "\n" not in message
    assert path in message
    assert info.value.field == path
    return info.value


# -- IdlePolicy --------------------------------------------------------------------------

class TestIdlePolicy:
    def test_defaults_are_warn_only_at_5_percent_for_30_minutes_every_10(self):
        policy = IdlePolicy()
        assert policy.threshold == 5.0
        assert policy.window == 1800
        assert policy.step == 600
        assert policy.actions == ("warn",)
        assert policy.signal == "SIGUSR1"
        assert policy.enabled

    def test_no_actions_means_disabled(self):
        assert not IdlePolicy(actions=()).enabled

    def test_is_frozen(self):
        with pytest.raises(Exception):
            IdlePolicy().threshold = 10.0  # type: ignore[misc]

    def test_due_at_first_action_after_window_then_every_step(self):
        policy = IdlePolicy(window=1800, step=600, actions=("warn", "signal", "cancel"))
        assert policy.due_at(1000.0, 0) == 2800.0
        assert policy.due_at(1000.0, 1) == 3400.0
        assert policy.due_at(1000.0, 2) == 4000.0

    @pytest.mark.parametrize(
        ("policy", "text"),
        [
            (IdlePolicy(), "under 5% for 30m: warn"),
            (IdlePolicy(actions=()), "off"),
            (IdlePolicy(threshold=2.5, window=3600, step=900, actions=("warn", "signal", "cancel")),
             "under 2.5% for 1h: warn, then signal, then cancel (every 15m)"),
            (IdlePolicy(threshold=10, window=5400, actions=("requeue",)), "under 10% for 1h30m: requeue"),
            (IdlePolicy(threshold=0.0, window=90, step=45, actions=("warn", "requeue")),
             "under 0% for 1m30s: warn, then requeue (every 45s)"),
        ],
    )
    def test_describe(self, policy, text):
        assert policy.describe() == text

    def test_to_dict(self):
        policy = IdlePolicy(threshold=7.5, window=600, step=60, actions=("warn", "signal"), signal="SIGUSR2")
        assert policy.to_dict() == {"threshold": 7.5, "window": 600, "step": 60,
                                    "actions": ["warn", "signal"], "signal": "SIGUSR2"}

    @pytest.mark.parametrize(
        "policy",
        [
            IdlePolicy(),
            IdlePolicy(actions=()),
            IdlePolicy(threshold=0.0, window=1, step=1, actions=("cancel",), signal="SIGTERM"),
            IdlePolicy(threshold=100.0, window=86400, step=3600, actions=("warn", "signal", "requeue")),
        ],
    )
    def test_round_trip(self, policy):
        assert IdlePolicy.from_dict(policy.to_dict()) == policy

    def test_from_dict_fills_missing_fields_with_defaults(self):
        assert IdlePolicy.from_dict({}) == IdlePolicy()
        assert IdlePolicy.from_dict({"window": 60}) == IdlePolicy(window=60)
        assert IdlePolicy.from_dict({"actions": []}) == IdlePolicy(actions=())

    def test_from_dict_normalizes_types(self):
        policy = IdlePolicy.from_dict({"threshold": 5, "window": 60.0, "step": "30", "actions": ["warn"]})
        assert isinstance(policy.threshold, float) and policy.threshold == 5.0
        assert policy.window == 60 and isinstance(policy.window, int)
        assert policy.step == 30 and isinstance(policy.step, int)
        assert policy.actions == ("warn",)

    def test_merged_overrides_only_the_given_fields(self):
        base = IdlePolicy(threshold=5.0, window=1800, step=600, actions=("warn",), signal="SIGUSR1")
        merged = base.merged({"window": 3600, "actions": ["warn", "cancel"]})
        assert merged == IdlePolicy(threshold=5.0, window=3600, step=600, actions=("warn", "cancel"),
                                    signal="SIGUSR1")
        assert isinstance(merged.actions, tuple)
        assert base.window == 1800  # the base is unchanged

    @pytest.mark.parametrize("overrides", [None, {}])
    def test_merged_without_overrides_is_the_same_policy(self, overrides):
        base = IdlePolicy(window=60)
        assert base.merged(overrides) is base

    def test_merged_with_parsed_overrides(self):
        merged = IdlePolicy().merged(parse_idle({"threshold": "10%", "step": "5m", "actions": "warn+requeue",
                                                 "signal": "usr2"}, PATH))
        assert merged == IdlePolicy(threshold=10.0, window=1800, step=300, actions=("warn", "requeue"),
                                    signal="SIGUSR2")

    def test_merged_can_turn_reclaim_off(self):
        assert not IdlePolicy(actions=("warn", "cancel")).merged({"actions": ()}).enabled


# -- parse_threshold ---------------------------------------------------------------------

class TestParseThreshold:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("5%", 5.0), ("5", 5.0), (5, 5.0), (5.0, 5.0), ("2.5%", 2.5), (" 5 % ", 5.0),
            (0, 0.0), ("0%", 0.0), (100, 100.0), ("100%", 100.0), (0.5, 0.5), ("12.75", 12.75),
        ],
    )
    def test_accepted(self, value, expected):
        result = parse_threshold(value, PATH + ".threshold")
        assert result == expected
        assert isinstance(result, float)

    @pytest.mark.parametrize(
        "value",
        [True, False, -1, -0.1, 100.1, 101, "101%", "-5%", "abc", "", "%", "5 percent", None, [5], {"t": 5},
         float("nan"), float("inf"), "nan", "inf"],
    )
    def test_rejected(self, value):
        err = failure(parse_threshold, value, PATH + ".threshold")
        assert "percentage from 0 to 100" in str(err)

    def test_message(self):
        err = failure(parse_threshold, "lots", "idle_gpu.threshold")
        assert str(err) == ('invalid value for idle_gpu.threshold: "lots" '
                            "(expected a GPU utilization percentage from 0 to 100, e.g. 5 or 5%)")

    def test_bool_message_shows_the_bool(self):
        assert str(failure(parse_threshold, True)).startswith(f"invalid value for {PATH}: True (")


# -- parse_actions -----------------------------------------------------------------------

class TestParseActions:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ([], ()),
            ((), ()),
            ("", ()),
            (["warn"], ("warn",)),
            (["signal"], ("signal",)),
            (["cancel"], ("cancel",)),
            (["requeue"], ("requeue",)),
            (["warn", "signal", "cancel"], ("warn", "signal", "cancel")),
            (["warn", "signal", "requeue"], ("warn", "signal", "requeue")),
            (("warn", "cancel"), ("warn", "cancel")),
            (["signal", "warn"], ("signal", "warn")),     # order is the user's, as long as final is last
            ("warn,cancel", ("warn", "cancel")),
            ("warn+cancel", ("warn", "cancel")),
            ("warn, signal, requeue", ("warn", "signal", "requeue")),
            (" warn + signal ", ("warn", "signal")),
            ("warn,signal+cancel", ("warn", "signal", "cancel")),
            ("warn,,cancel", ("warn", "cancel")),
        ],
    )
    def test_accepted(self, value, expected):
        assert parse_actions(value, PATH + ".actions") == expected

    @pytest.mark.parametrize(
        "value",
        [
            ["warn", "warn"],                  # duplicate
            ["signal", "warn", "signal"],      # duplicate, apart
            "warn,warn",
            ["cancel", "warn"],                # final action not last
            ["requeue", "signal"],
            "cancel+warn",
            ["cancel", "requeue"],             # two final actions
            ["requeue", "cancel"],
            ["warn", "cancel", "requeue"],
            ["cancel", "cancel"],
            ["kill"],                          # unknown
            ["warn", "Cancel"],                # case matters
            "warn,nope",
            [1],
            [None],
            None,
            5,
            {"warn": True},
        ],
    )
    def test_rejected(self, value):
        err = failure(parse_actions, value, PATH + ".actions")
        assert "cancel or requeue last" in str(err)
        assert "[] turns reclaim off" in str(err)

    def test_message(self):
        err = failure(parse_actions, ["cancel", "warn"], "idle_gpu.actions")
        assert str(err) == ("invalid value for idle_gpu.actions: ['cancel', 'warn'] (expected a list of "
                            "warn, signal, cancel, requeue in order, each at most once, with cancel or "
                            "requeue last, e.g. [warn, signal, cancel]; [] turns reclaim off)")

    @given(st.lists(st.sampled_from(ACTIONS), max_size=6))
    def test_any_list_is_accepted_exactly_when_valid(self, items):
        finals = [i for i, a in enumerate(items) if a in ("cancel", "requeue")]
        valid = (len(set(items)) == len(items)
                 and len(finals) <= 1
                 and (not finals or finals[0] == len(items) - 1))
        if valid:
            assert parse_actions(items, PATH) == tuple(items)
            assert parse_actions("+".join(items), PATH) == tuple(items)
        else:
            failure(parse_actions, items)


# -- parse_signal ------------------------------------------------------------------------

class TestParseSignal:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("SIGUSR1", "SIGUSR1"),
            ("USR1", "SIGUSR1"),
            ("usr1", "SIGUSR1"),
            ("sigusr2", "SIGUSR2"),
            ("SigTerm", "SIGTERM"),
            (" TERM ", "SIGTERM"),
            ("INT", "SIGINT"),
            ("HUP", "SIGHUP"),
            (int(_signal.SIGUSR1), "SIGUSR1"),
            (str(int(_signal.SIGUSR2)), "SIGUSR2"),
            (15, "SIGTERM"),
            ("15", "SIGTERM"),
            (" 2 ", "SIGINT"),
        ],
    )
    def test_accepted(self, value, expected):
        assert parse_signal(value, PATH + ".signal") == expected

    @pytest.mark.parametrize(
        "value",
        ["SIGKILL", "KILL", "kill", 9, "9", "SIGSTOP", "STOP", "stop", int(_signal.SIGSTOP),
         str(int(_signal.SIGSTOP))],
    )
    def test_uncatchable_rejected(self, value):
        err = failure(parse_signal, value, PATH + ".signal")
        assert "that a job can catch" in str(err)

    @pytest.mark.parametrize(
        "value",
        ["", "SIG", "SIGNOPE", "nonsense", "USR3", "-10", "1.5", 0, -1, 1000, 10.0, True, False, None,
         ["SIGUSR1"], "SIG_DFL", "SIG_IGN"],
    )
    def test_nonsense_rejected(self, value):
        failure(parse_signal, value, PATH + ".signal")

    def test_message(self):
        err = failure(parse_signal, "SIGKILL", "idle_gpu.signal")
        assert str(err) == ('invalid value for idle_gpu.signal: "SIGKILL" (expected a signal name or number '
                            "that a job can catch, e.g. SIGUSR1, USR2, TERM, 10)")

    def test_every_catchable_signal_round_trips(self):
        for sig in _signal.Signals:
            if sig.name in ("SIGKILL", "SIGSTOP"):
                continue
            assert parse_signal(sig.name, PATH) == sig.name
            assert parse_signal(sig.name[3:].lower(), PATH) == sig.name
            assert parse_signal(int(sig), PATH) == sig.name


# -- parse_idle --------------------------------------------------------------------------

class TestParseIdle:
    def test_full_mapping(self):
        parsed = parse_idle({"threshold": "5%", "window": "30m", "step": "10m",
                             "actions": ["warn", "signal", "cancel"], "signal": "USR1"}, "idle_gpu")
        assert parsed == {"threshold": 5.0, "window": 1800, "step": 600,
                          "actions": ("warn", "signal", "cancel"), "signal": "SIGUSR1"}

    def test_partial_mapping_returns_only_given_fields(self):
        assert parse_idle({"window": "1h"}, PATH) == {"window": 3600}
        assert parse_idle({"actions": []}, PATH) == {"actions": ()}
        assert parse_idle({"threshold": 10}, PATH) == {"threshold": 10.0}
        assert parse_idle({}, PATH) == {}

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [("30m", 1800), ("1h", 3600), ("90s", 90), ("1h30m", 5400), ("30", 1800), (90, 90), (1.5, 2)],
    )
    def test_durations(self, value, seconds):
        # bare strings are minutes (Slurm's convention), numbers are seconds
        assert parse_idle({"window": value, "step": value}, PATH) == {"window": seconds, "step": seconds}

    @pytest.mark.parametrize("value", ["soon", 0, "0", -5, "-1m", True, None])
    def test_bad_durations_name_the_field(self, value):
        with pytest.raises(ValidationError) as info:
            parse_idle({"step": value}, "idle_gpu")
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("invalid duration for idle_gpu.step: ")
        assert "expected e.g. 30m, 1h, 90s" in message

    @pytest.mark.parametrize(
        ("mapping", "field"),
        [
            ({"threshold": "200%"}, "threshold"),
            ({"actions": ["cancel", "warn"]}, "actions"),
            ({"signal": "KILL"}, "signal"),
        ],
    )
    def test_bad_values_name_the_full_path(self, mapping, field):
        with pytest.raises(ValidationError) as info:
            parse_idle(mapping, "spec.idleGpu")
        assert str(info.value).startswith(f"invalid value for spec.idleGpu.{field}: ")
        assert info.value.field == f"spec.idleGpu.{field}"
        assert "\n" not in str(info.value)

    def test_unknown_field(self):
        with pytest.raises(ValidationError) as info:
            parse_idle({"window": "1h", "treshold": 5}, "idle_gpu")
        assert str(info.value) == ("unknown field idle_gpu.treshold "
                                   "(accepted: threshold, window, step, actions, signal)")
        assert info.value.field == "idle_gpu.treshold"

    @pytest.mark.parametrize("value", [None, 5, "warn", ["warn"]])
    def test_not_a_mapping(self, value):
        with pytest.raises(ValidationError) as info:
            parse_idle(value, "idle_gpu")
        message = str(info.value)
        assert message.startswith("invalid value for idle_gpu: ")
        assert f"expected a mapping with fields {', '.join(FIELDS)}" in message
        assert "\n" not in message


# -- IdleTracker -------------------------------------------------------------------------

CHAIN = IdlePolicy(threshold=5.0, window=1800, step=600, actions=("warn", "signal", "cancel"))


class TestIdleTracker:
    def test_no_action_before_the_window(self):
        tracker = IdleTracker(CHAIN)
        assert tracker.observe(0, 0.0) == IdleVerdict(actions=(), resumed=False, idle_for=0.0)
        for t in range(30, 1800, 30):
            verdict = tracker.observe(t, 1.0)
            assert verdict.actions == ()
            assert verdict.idle_for == t
        assert tracker.idle_since == 0
        assert tracker.stage == 0

    def test_first_action_exactly_at_idle_since_plus_window(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(1000, 0.0)
        assert tracker.observe(2799.999, 0.0).actions == ()
        verdict = tracker.observe(2800, 0.0)
        assert verdict.actions == ("warn",)
        assert verdict.idle_for == 1800
        assert not verdict.resumed

    def test_further_actions_every_step(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(0, 0.0)
        fired = {}
        for t in range(0, 5000, 10):
            verdict = tracker.observe(t, 0.0)
            for action in verdict.actions:
                fired[action] = t
        assert fired == {"warn": 1800, "signal": 2400, "cancel": 3000}

    def test_several_actions_due_at_once_come_out_in_order(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(0, 0.0)
        verdict = tracker.observe(2400, 0.0)     # warn and signal are both due
        assert verdict.actions == ("warn", "signal")
        assert tracker.observe(2999, 0.0).actions == ()
        assert tracker.observe(10_000, 0.0).actions == ("cancel",)

    def test_all_actions_at_once_on_a_very_late_sample(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(0, 0.0)
        assert tracker.observe(1e6, 0.0).actions == ("warn", "signal", "cancel")

    def test_nothing_more_after_all_actions(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(0, 0.0)
        tracker.observe(3000, 0.0)
        for t in range(3000, 20000, 300):
            verdict = tracker.observe(t, 0.0)
            assert verdict.actions == ()
            assert verdict.idle_for == t
        assert tracker.stage == 3

    def test_busy_sample_resets_the_stretch_without_resumed_if_nothing_fired(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(0, 0.0)
        verdict = tracker.observe(1700, 5.0)   # at the threshold counts as busy
        assert verdict == IdleVerdict(actions=(), resumed=False, idle_for=0.0)
        assert tracker.idle_since is None
        # the window starts over from the next idle sample
        tracker.observe(1800, 0.0)
        assert tracker.observe(3599, 0.0).actions == ()
        assert tracker.observe(3600, 0.0).actions == ("warn",)

    def test_busy_sample_after_an_action_reports_resumed(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(0, 0.0)
        assert tracker.observe(1800, 0.0).actions == ("warn",)
        verdict = tracker.observe(1900, 80.0)
        assert verdict.resumed
        assert verdict.actions == ()
        assert verdict.idle_for == 0.0
        assert tracker.stage == 0 and tracker.idle_since is None
        # resumed is reported once: the next busy sample is just busy
        assert not tracker.observe(1930, 80.0).resumed

    def test_chain_restarts_from_the_first_action_after_resuming(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(0, 0.0)
        assert tracker.observe(2400, 0.0).actions == ("warn", "signal")
        assert tracker.observe(2500, 50.0).resumed
        tracker.observe(2600, 0.0)
        assert tracker.observe(4400, 0.0).actions == ("warn",)
        assert tracker.observe(5000, 0.0).actions == ("signal",)

    def test_just_under_the_threshold_is_idle(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(0, 4.999)
        assert tracker.observe(1800, 4.999).actions == ("warn",)

    def test_none_does_not_start_a_stretch(self):
        tracker = IdleTracker(CHAIN)
        for t in range(0, 10_000, 100):
            assert tracker.observe(t, None) == IdleVerdict()
        assert tracker.idle_since is None
        # idle starts counting at the first known idle sample, not at the first None
        tracker.observe(10_000, 0.0)
        assert tracker.observe(11_799, 0.0).actions == ()
        assert tracker.observe(11_800, 0.0).actions == ("warn",)

    def test_none_does_not_reset_a_stretch(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(0, 0.0)
        verdict = tracker.observe(1000, None)
        assert verdict == IdleVerdict(actions=(), resumed=False, idle_for=1000)
        assert tracker.idle_since == 0
        assert tracker.observe(1800, 0.0).actions == ("warn",)

    def test_none_does_not_fire_due_actions_nor_end_them(self):
        tracker = IdleTracker(CHAIN)
        tracker.observe(0, 0.0)
        assert tracker.observe(1800, 0.0).actions == ("warn",)
        # no reading for a long time: nothing fires, nothing resumes
        for t in (2400, 3000, 5000):
            verdict = tracker.observe(t, None)
            assert verdict.actions == () and not verdict.resumed
            assert verdict.idle_for == t
        assert tracker.stage == 1
        # the next idle sample catches up, in order
        assert tracker.observe(5001, 0.0).actions == ("signal", "cancel")

    def test_disabled_policy_never_acts(self):
        tracker = IdleTracker(IdlePolicy(actions=()))
        for t in range(0, 100_000, 600):
            verdict = tracker.observe(t, 0.0)
            assert verdict.actions == ()
        assert not tracker.observe(100_000, 99.0).resumed

    def test_threshold_zero_is_never_idle(self):
        tracker = IdleTracker(IdlePolicy(threshold=0.0))
        for t in range(0, 100_000, 600):
            assert tracker.observe(t, 0.0).actions == ()
        assert tracker.idle_since is None

    def test_single_final_action(self):
        tracker = IdleTracker(IdlePolicy(window=60, step=600, actions=("requeue",)))
        tracker.observe(0, 0.0)
        assert tracker.observe(59, 0.0).actions == ()
        assert tracker.observe(60, 0.0).actions == ("requeue",)
        assert tracker.observe(10_000, 0.0).actions == ()


# -- the tracker's invariants, for any sample sequence ----------------------------------

policies = st.builds(
    IdlePolicy,
    threshold=st.sampled_from([0.0, 5.0, 50.0, 100.0]),
    window=st.integers(min_value=1, max_value=120),
    step=st.integers(min_value=1, max_value=60),
    actions=st.sampled_from([(), ("warn",), ("cancel",), ("warn", "signal"), ("warn", "requeue"),
                             ("warn", "signal", "cancel"), ("signal", "warn", "requeue")]),
)
utilizations = st.one_of(st.none(), st.sampled_from([0.0, 4.9, 5.0, 49.9, 50.0, 99.9, 100.0]),
                         st.floats(min_value=0, max_value=100))
samples = st.lists(st.tuples(st.integers(min_value=0, max_value=90), utilizations), max_size=60)


@settings(max_examples=300, deadline=None)
@given(policies, st.integers(min_value=0, max_value=10**6), samples)
def test_tracker_invariants(policy, start, steps):
    tracker = IdleTracker(policy)
    now = float(start)
    stretch_start: float | None = None   # our own model of the current idle stretch
    taken: list[str] = []                # actions emitted in the current stretch
    for gap, util in steps:
        now += gap                       # time never goes back (equal times allowed)
        verdict = tracker.observe(now, util)

        if util is None:
            # unknown utilization changes nothing
            assert verdict.actions == () and not verdict.resumed
            assert verdict.idle_for == (now - stretch_start if stretch_start is not None else 0.0)
            continue
        if util >= policy.threshold:
            assert verdict.actions == ()
            assert verdict.resumed == bool(taken)   # resumed only if this stretch led to actions
            assert verdict.idle_for == 0.0
            stretch_start, taken = None, []
            continue

        if stretch_start is None:
            stretch_start = now
        assert verdict.idle_for == now - stretch_start
        assert not verdict.resumed
        for action in verdict.actions:
            stage = len(taken)
            # never out of order, never repeated: exactly the next action of the policy
            assert stage < len(policy.actions)
            assert action == policy.actions[stage]
            # continuously under the threshold for at least the window (and the steps)
            assert now - stretch_start >= policy.window
            assert now >= policy.due_at(stretch_start, stage)
            taken.append(action)
        assert tuple(taken) == policy.actions[:len(taken)]
        assert len(set(taken)) == len(taken)
        # and nothing due is held back when the sample is idle
        expected = sum(1 for k in range(len(policy.actions)) if now >= policy.due_at(stretch_start, k))
        assert len(taken) == expected
        assert tracker.stage == len(taken)


def test_parse_signal_rejects_non_ascii_digits_with_a_validation_error():
    for text in ("²", "٣"):
        with pytest.raises(ValidationError):
            parse_signal(text, "spec.idleGpu.signal")


def test_nan_utilization_is_unknown_not_idle():
    tracker = IdleTracker(IdlePolicy(window=10, actions=("warn",)))
    assert tracker.observe(0.0, float("nan")).actions == ()
    assert tracker.observe(100.0, float("nan")).actions == ()
    assert tracker.idle_since is None
