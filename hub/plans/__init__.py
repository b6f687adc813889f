"""EHC plans as the hub reasons about them: the statutory clock of each plan, computed
purely from the plan's events and an explicit `today` (no I/O here), and the rules on
which plan events may follow which (`transitions`)."""

from hub.plans.clock import (
    Milestone,
    MilestoneKind,
    MilestoneState,
    PhaseTransfer,
    PlanClock,
    Rule,
    Se7Stage,
    StatutoryStatus,
    compute_clock,
    due_date,
    end_of_months_period,
    phase_transfer_deadline,
    standard_phase_transfers,
)
from hub.plans.transitions import Violation, check_transition

__all__ = [
    "Milestone",
    "MilestoneKind",
    "MilestoneState",
    "PhaseTransfer",
    "PlanClock",
    "Rule",
    "Se7Stage",
    "StatutoryStatus",
    "Violation",
    "check_transition",
    "compute_clock",
    "due_date",
    "end_of_months_period",
    "phase_transfer_deadline",
    "standard_phase_transfers",
]
