"""Reading rule files: YAML with line numbers, validated against the field catalogue.

A rule folder holds one rule per ``*.yaml`` file, the derived fields in ``derived.yaml``,
the priority factors in ``priority.yaml``, and optionally tests beside a rule in
``<name>.tests.yaml``. Nothing in a file can run code: the YAML is read as plain data (no
tags, no aliases), and conditions are a closed set of operators.

One module per thing parsed: ``yamlfile`` (reading a file safely), ``condition_parser``,
``rules``, ``testcases``, ``derived``, ``priority``, and ``folder`` (the whole folder,
``load_rule_dir``); ``model`` holds what they produce and the vocabulary they share,
``common`` their helpers. Every problem is a ``model.Problem``: ``path:line:column:
message`` with a hint on what to do.

May import: the rest of ``engine.language`` below it (casefile, catalogue, conditions,
dates, mailtext). Never ``compiler``, ``facts`` or the evaluators.
"""
