"""The service layer: one handler per use case of the write side, each built by the
composition root (`hub.bootstrap`) with exactly the ports it needs.

- `submit_facts.SubmitFacts`: identity, idempotency claim, consent decision, sealing,
  audit and append of inbound facts (every adapter, route and the Kafka consumer);
- `reconsider.ReconsiderWithheld`: after a consent change, release what it now covers
  and audit what it no longer covers;
- `matching.ResolveMatch`: a person's decision on a match-queue item;
- `erasure.EraseChild`, `erasure.ApplyRetention`: crypto-shredding;
- `consent_review.ReviewConsents`: the daily consent housekeeping;
- `plan_steps.RecordPlanSteps`: the local authority's steps on an EHC plan.

`views.GateViews` keeps the projections the write side consults (consent state, the
withheld index, the shared record) caught up. Routes, the CLI and the Kafka consumer call
handlers; none of them reaches into a port.
"""
