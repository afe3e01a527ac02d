"""The rule language: what a rule file means, for one case on one as-of date.

Owns the contracts rules are written against (the case-file and staff fields in
``casefile``, the field catalogue, e-mail address syntax, dates and working days, the
words mail may not hold), reading and checking rule files (``rulefile/``), the JSON
Schemas for editors, compiling a checked rule folder for an as-of date (``compiler``),
building a case's fact (``facts``), evaluating it with durable-rules
(``durable_backend``, the only module that imports ``durable_rules``) and with plain
Python (``conditions``) cross-checked (``evaluator``), the tests written in rule files
(``ruletests``), and what a rule set reads from the source (``needs``).

May import: only itself (and third-party libraries). It is the bottom layer.
"""
