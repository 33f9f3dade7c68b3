"""The embedded runtime: a Tansu broker child process, processor worker processes and the
ClickHouse sink against chDB, all started by one command (``meterline up``)."""
