"""What a job is: its spec, its states, the snapshots and events the queue hands out, the errors.

Everything here is plain immutable data (``attrs.frozen``), safe to pass between tasks and to
serialise (``to_json``). The queue itself is in ``jobqueue.py``.

States and their transitions (nothing else ever happens; a final state never changes)::

    queued ──▶ running ──▶ done            (every step finished)
      │           │  └───▶ failed          (an error, "timed out", or "stalled")
      │           ▼
      │       cancelling ─▶ cancelled     (cancel(mode="safe" | "now") of a running job)
      └──────────────────▶ cancelled      (cancel of a queued job: it never starts)

A running job whose queue is destroyed also goes through ``cancelling``; one whose queue's parent
context ends may see that before the queue does and go straight to ``cancelled`` (the reason is
that context's cause). A job answered from the result cache is born ``done``.
"""

from __future__ import annotations

from typing import Any, Final, Literal, cast

import attrs

State = Literal["queued", "running", "cancelling", "cancelled", "done", "failed"]
FINAL_STATES: Final[frozenset[State]] = frozenset({"cancelled", "done", "failed"})
CancelMode = Literal["safe", "now"]
CANCEL_MODES: Final[tuple[CancelMode, ...]] = ("safe", "now")
KINDS: Final = ("async", "thread", "process")


class SpecError(ValueError):
    """A job spec (or its JSON) is invalid; the message names the field."""


# Upper bounds: every value is checked before anything runs, so nothing can overflow or hang
# later (a float(10**400), a trio.sleep(1e308), a 60 KB prompt times 3,000 queued jobs).
MAX_STEPS: Final = 10_000
MAX_STEP_SECONDS: Final = 60.0
MAX_SECONDS: Final = 86_400.0  # timeout, stall_timeout: one day
MAX_PROMPT: Final = 2_000  # characters
MAX_LEAK_MIB: Final = 1024  # MiB a demo worker may leak per step


def _positive_int(name: str, value: object, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"`{name}` must be an integer, not {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise SpecError(
            f"`{name}` must be {'non-negative' if allow_zero else 'positive'}, got {_short(value)}"
        )
    return value


def _short(value: int) -> str:
    """An int for a message: a 400-digit number is shown by its size."""
    text = str(value) if value.bit_length() < 64 else f"a {len(str(value))}-digit number"
    return text


def _string(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise SpecError(f"`{name}` must be a string, not {type(value).__name__}")


def check_prompt(value: object) -> None:
    """A prompt a worker process can take: text, no NUL, no lone surrogate, not a flag."""
    _string("prompt", value)
    assert isinstance(value, str)
    if not value.strip():
        raise SpecError("`prompt` must not be empty")
    if len(value) > MAX_PROMPT:
        raise SpecError(f"`prompt` must be at most {MAX_PROMPT} characters, got {len(value)}")
    if "\0" in value:
        raise SpecError("`prompt` must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError("`prompt` must be valid Unicode text (no lone surrogates)") from None
    if value.startswith("-"):
        raise SpecError("`prompt` must not start with '-' (it would look like an option)")


def check_seconds(name: str, value: object, *, most: float, positive: bool = False) -> float:
    """A number of seconds in ``[0, most]`` (``(0, most]`` with ``positive``), as a float.

    Checked on the number as given, before any ``float()``: ``1`` followed by 400 zeros is a
    clear error, not an ``OverflowError``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"`{name}` must be a number of seconds, not {type(value).__name__}")
    if not 0 <= value <= most or (positive and value == 0):  # also rejects NaN
        shown = f"{value!r}" if len(repr(value)) < 30 else f"{repr(value)[:20]}..."
        low = "more than 0" if positive else "at least 0"
        raise SpecError(f"`{name}` must be {low} and at most {most:g} seconds, got {shown}")
    return float(value)


@attrs.frozen(kw_only=True)
class JobSpec:
    """What to generate. Hashable: the result cache is keyed by the whole spec.

    ``kind`` picks the work (``"async"``: an async step loop, ``"thread"``: a CPU-bound step loop
    in a worker thread, ``"process"``: a worker subprocess); ``steps`` of ``step_seconds`` each.
    ``hang_at``/``fail_at`` (a step number, 1-based) make the work hang without progress or raise
    at that step; ``leak_mib`` makes a ``"process"`` worker keep that many more MiB after each
    step: broken workers on demand, for demos and tests.
    """

    kind: str
    prompt: str
    steps: int = 10
    step_seconds: float = 0.1
    hang_at: int | None = None
    fail_at: int | None = None
    leak_mib: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpecError(f"`kind` must be one of {', '.join(KINDS)}; got {self.kind!r}")
        check_prompt(self.prompt)
        _positive_int("steps", self.steps)
        if self.steps > MAX_STEPS:
            raise SpecError(f"`steps` must be at most {MAX_STEPS}, got {_short(self.steps)}")
        check_seconds("step_seconds", self.step_seconds, most=MAX_STEP_SECONDS)
        for name in ("hang_at", "fail_at"):
            value = getattr(self, name)
            if value is not None:
                _positive_int(name, value)
                if value > self.steps:
                    raise SpecError(f"`{name}` must be a step number, at most `steps`")
        if self.leak_mib is not None:
            _positive_int("leak_mib", self.leak_mib)
            if self.leak_mib > MAX_LEAK_MIB:
                raise SpecError(f"`leak_mib` must be at most {MAX_LEAK_MIB}")

    @classmethod
    def from_json(cls, data: object) -> JobSpec:
        """Build a spec from decoded JSON (an object with the field names).

        Raises:
            SpecError: not an object, an unknown field, or a bad value.
        """
        if not isinstance(data, dict):
            raise SpecError("a job spec must be a JSON object")
        data = cast("dict[str, Any]", data)
        fields = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            shown = ", ".join(repr(name)[:40] for name in unknown[:5])
            raise SpecError(f"unknown field(s) in the job spec: {shown}")
        try:
            return cls(**data)
        except TypeError as exc:  # a required field is missing
            raise SpecError(str(exc).replace("__init__() ", "")) from None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class JobInfo:
    """A snapshot of one job, as ``queue.get()``, ``queue.jobs()`` and events give it.

    ``outputs`` holds one entry per finished step: the result when ``done``, the partial result
    of a cancelled or failed job. ``reason`` says why a job ended the way it did (``None`` for a
    normal ``done``); while ``cancelling`` it says how it was asked to stop.
    """

    id: str
    spec: JobSpec
    state: State
    step: int
    outputs: tuple[str, ...]
    reason: str | None = None
    cached: bool = False
    timeout: float | None = None
    stall_timeout: float | None = None

    @property
    def steps(self) -> int:
        return self.spec.steps

    @property
    def percent(self) -> int:
        """Progress in whole percent (rounded down, so 100 means every step finished)."""
        return self.step * 100 // self.spec.steps

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec.to_json(),
            "state": self.state,
            "step": self.step,
            "steps": self.steps,
            "percent": self.percent,
            "reason": self.reason,
            "cached": self.cached,
            "timeout": self.timeout,
            "stall_timeout": self.stall_timeout,
            "outputs": list(self.outputs),
        }


@attrs.frozen
class JobEvent:
    """A change to one job: ``"state"`` (a new state) or ``"progress"`` (one more step).

    A subscriber that fell behind gets coalesced events (see ``events.py``): the newest snapshot
    of the job, typed ``"state"`` if any of the events it replaces was a state change.
    """

    type: Literal["state", "progress"]
    job: JobInfo
    new_outputs: tuple[str, ...] = ()  # the outputs of the steps since the reader's last event

    def to_json(self) -> dict[str, Any]:
        """What goes on the wire (an SSE event's ``data``). A ``"state"`` event carries the whole
        job; a ``"progress"`` event only what changed: the counters and ``new_outputs`` (the
        outputs of steps ``step - len(new_outputs) + 1`` to ``step``), never everything so far."""
        job = self.job.to_json()
        if self.type == "progress":
            del job["outputs"], job["spec"]
            job["new_outputs"] = list(self.new_outputs)
        return job


# -- errors, and the causes the queue cancels contexts with ---------------------------------


class QueueClosed(RuntimeError):
    """``submit()`` after ``close()`` or ``destroy()``."""


class QueueFull(RuntimeError):
    """``submit()`` while ``max_queued`` jobs wait already: try again later."""


class UnknownJob(LookupError):
    """No job with that id (never submitted, or forgotten after ``keep_finished`` newer ones)."""


class JobTimedOut(TimeoutError):
    """The cause of a job context whose ``timeout`` passed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s")


class JobStalled(TimeoutError):
    """The cause of a job context that made no progress for ``stall_timeout`` seconds."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"stalled: no progress for {seconds:g} s")


class CancelRequested(Exception):
    """The cause of a cancellation the queue made: ``cancel()``, ``close()``'s deadline,
    ``destroy()``. The message is the job's ``reason``."""
