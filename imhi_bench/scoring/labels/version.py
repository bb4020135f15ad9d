"""The label rules' version: it names the reader in every run's protocol
(`imhi_bench.scoring.protocol`), so a change to what the rules read is a new protocol.
Bump it whenever a rule changes what any text reads as (the rules: `reader`, `cues`,
`choices`, `negation`, `schema`).

1: issues 1-16; 2: issue 23 (option lists anywhere, category statements, relatives, the
classifier reads text without option lists).
"""

RULES_VERSION = 2
