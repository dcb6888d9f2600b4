"""Research references: preemptive policies from the literature, for comparison only.

``srtf`` (:mod:`.srtf`; oracle run times) and ``tiresias`` (:mod:`.tiresias`, Gu et al.,
NSDI'19) preempt by remaining time and by attained service -- rules the daemon does not
run. They have their own loop (:mod:`.loop`) over the scheduler's snapshot, best fit and
gang placement; ``corral sim`` runs them beside the daemon's own policies.
"""

from __future__ import annotations

from .base import CORRAL, PAPER, RULES, JobState, PreemptivePolicy, check_rules
from .loop import DEFAULT_PLACEMENT, PLACEMENTS, check_placement
from .srtf import srtf
from .tiresias import DEFAULT_THRESHOLDS, parse_promote_knob, parse_thresholds, tiresias

#: Name -> factory(thresholds=, promote_knob=) of the research references.
RESEARCH_POLICIES = {"srtf": srtf, "tiresias": tiresias}

__all__ = ["CORRAL", "PAPER", "RULES", "DEFAULT_PLACEMENT", "PLACEMENTS", "check_placement", "check_rules",
           "JobState", "PreemptivePolicy", "RESEARCH_POLICIES", "DEFAULT_THRESHOLDS", "parse_promote_knob",
           "parse_thresholds", "srtf", "tiresias"]
