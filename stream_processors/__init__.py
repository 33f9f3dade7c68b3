"""meterline stream processors: validate, dedupe and join agent events (Faust workers),
plus the embedded runtime and the ``meterline`` command line."""
