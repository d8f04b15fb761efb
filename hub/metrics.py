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
        self.notices_sent = Counter("relais_outbox_sent_total", "Matrix actions performed",
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
