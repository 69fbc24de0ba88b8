"""Per-iteration hyperparameter schedules ``i -> value`` as small typed rule lists.

MGDM's reference evaluates strings such as ``"20 if i >= K - 10 else 3"``; we never evaluate
strings. A :class:`StepSchedule` is data: a default value, index ranges that override it (a
negative bound counts from ``K``, the number of grid points, so ``(-10, None)`` means
``i >= K - 10``), and periodic overrides (``i % period == 0``).

Text form (command line): ``DEFAULT[,LO:HI=VALUE][,%PERIOD=VALUE]…`` with empty bounds allowed,
e.g. ``"3,-10:=20"`` (the reference G), ``"0.03,:11=0.01"`` (the reference lr) or
``"3,-30:=20,%10=20"`` (the latent-diffusion G). Later rules win over earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IndexRange:
    """``start <= i < stop`` (either bound may be ``None``; negative bounds are ``K + bound``)."""

    start: int | None
    stop: int | None
    value: float

    def contains(self, i: int, num_steps: int) -> bool:
        lo = self.start if self.start is None or self.start >= 0 else num_steps + self.start
        hi = self.stop if self.stop is None or self.stop >= 0 else num_steps + self.stop
        return (lo is None or i >= lo) and (hi is None or i < hi)


@dataclass(frozen=True)
class Periodic:
    """``i % period == 0``."""

    period: int
    value: float

    def contains(self, i: int, num_steps: int) -> bool:
        return i % self.period == 0


@dataclass(frozen=True)
class StepSchedule:
    """A value per outer iteration ``i`` (0-based) of a sampler with ``K`` grid points."""

    default: float
    rules: tuple[IndexRange | Periodic, ...] = ()

    def __call__(self, i: int, num_steps: int) -> float:
        value = self.default
        for rule in self.rules:
            if rule.contains(i, num_steps):
                value = rule.value
        return value

    def scaled(self, factor: float) -> StepSchedule:
        """Every value multiplied by ``factor``."""
        rules = tuple(
            IndexRange(r.start, r.stop, r.value * factor)
            if isinstance(r, IndexRange)
            else Periodic(r.period, r.value * factor)
            for r in self.rules
        )
        return StepSchedule(self.default * factor, rules)

    @classmethod
    def constant(cls, value: float) -> StepSchedule:
        return cls(float(value))

    @classmethod
    def parse(cls, text: str) -> StepSchedule:
        """Parse the text form described in the module docstring; raises ``ValueError``."""
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        if not parts:
            raise ValueError("empty schedule; expected e.g. '3' or '3,-10:=20'.")
        try:
            default = float(parts[0])
            rules: list[IndexRange | Periodic] = []
            for part in parts[1:]:
                where, value = part.split("=")
                if where.startswith("%"):
                    period = int(where[1:])
                    if period < 1:
                        raise ValueError
                    rules.append(Periodic(period, float(value)))
                else:
                    lo, hi = where.split(":")
                    rules.append(
                        IndexRange(int(lo) if lo else None, int(hi) if hi else None, float(value))
                    )
        except ValueError:
            raise ValueError(
                f"cannot read the schedule {text!r}; expected DEFAULT[,LO:HI=VALUE][,%PERIOD=VALUE]..., "
                "e.g. '3,-10:=20'."
            ) from None
        return cls(default, tuple(rules))

    def __str__(self) -> str:
        out = [f"{self.default:g}"]
        for r in self.rules:
            if isinstance(r, IndexRange):
                lo = "" if r.start is None else str(r.start)
                hi = "" if r.stop is None else str(r.stop)
                out.append(f"{lo}:{hi}={r.value:g}")
            else:
                out.append(f"%{r.period}={r.value:g}")
        return ",".join(out)
