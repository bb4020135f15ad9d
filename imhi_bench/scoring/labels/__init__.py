"""Labels of the IMHI sets: `schema` (each set's classes, gold phrasings and free-text
aliases), `reader` (the class a generated response states, and why) and `gold` (the class of
a released gold response, read strictly)."""
