"""The strings the injection checks put in every field: SQL that would end a statement or widen a condition if
it were spliced into one, a bind-parameter marker, LIKE wildcards and an escape character. A NUL separately:
PostgreSQL text cannot hold one, so it is refused wherever it would be stored."""

INJECTIONS = ["'; DROP TABLE deals; --", "' OR '1'='1", "$1", "%", "_", "\\", "a%' OR tenant <> '", "%_%"]
NUL = "nul\x00byte"
