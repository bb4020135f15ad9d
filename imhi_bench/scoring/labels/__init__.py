"""Labels of the IMHI sets: `schema` (each set's classes, gold phrasings and free-text
aliases), `reader` (the class a generated response states, and why), `cues` (what ranks a
sentence), `choices` (option lists and the option a response chooses), `negation` (negated,
concessive and degree-denying clauses) and `gold` (the class of a released gold response,
read strictly)."""
