"""The label rules' version: it names the reader in every run's protocol
(`imhi_bench.scoring.protocol`), so a change to what the rules read is a new protocol.
Bump it whenever a rule changes what any text reads as."""

RULES_VERSION = "2026.12"
