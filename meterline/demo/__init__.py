"""``meterline demo``: synthetic agent traffic through the embedded pipeline, and a report."""
