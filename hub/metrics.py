"""Prometheus metrics: counts and states only, never a name or a case reference label."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter("relais_commands_total", "Commands answered", ["outcome"], registry=self.registry)
        self.outbox_pending = Gauge("relais_outbox_pending", "Outbox entries waiting", registry=self.registry)
        self.outbox_failed = Gauge("relais_outbox_failed", "Outbox entries failed for good",
                                   registry=self.registry)
        self.outbox_oldest = Gauge("relais_outbox_oldest_pending_seconds",
                                   "Age of the oldest outbox entry not yet delivered (0 when none waits)",
                                   registry=self.registry)
        self.outbox_dead = Counter("relais_outbox_dead_letters_total",
                                   "Outbox entries set aside for good (their referent told)", registry=self.registry)
        self.notices_sent = Counter("relais_outbox_sent_total", "Matrix actions performed",
                                    registry=self.registry)
        self.intake_dead = Counter("relais_intake_dead_letters_total",
                                   "Incoming events set aside after failing again and again", registry=self.registry)
        self.intake_dead_held = Gauge("relais_intake_dead_letters_held",
                                      "Incoming events set aside (held in the database)", registry=self.registry)
        self.intake_lag = Gauge("relais_intake_lag_seconds", "Seconds since the last sync was handled",
                                registry=self.registry)
        self.homeserver_up = Gauge("relais_homeserver_up", "1 when the last sync succeeded",
                                   registry=self.registry)
        self.alerts = Counter("relais_alerts_total", "Hospital messages received",
                              ["source", "outcome"], registry=self.registry)
        self.hl7_problems = Counter("relais_hl7_problems_total",
                                    "HL7 messages answered AE/AR, blocks refused, blocks answered after an idle wait",
                                    ["reason"], registry=self.registry)
        self.alerts_unmatched = Counter("relais_alerts_unknown_person_total",
                                        "Hospital messages for nobody followed (dropped)", registry=self.registry)
        self.referrals = Counter("relais_referrals_total", "Referrals sent to the integrated access point",
                                 ["source", "outcome"], registry=self.registry)
