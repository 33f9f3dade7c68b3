"""Kafka access (security/SASL/TLS) settings shared by producers, processors, sinks, shell."""

from __future__ import annotations


def kafka_access_config(
    security_protocol: str | None = None,
    sasl_mechanism: str | None = None,
    sasl_username: str | None = None,
    sasl_password: str | None = None,
    ssl_ca_location: str | None = None,
) -> dict[str, str]:
    """librdkafka access settings; empty means PLAINTEXT. A SASL mechanism without a
    protocol means SASL_PLAINTEXT, or SASL_SSL when a CA bundle is given."""
    conf: dict[str, str] = {}
    protocol = security_protocol
    if protocol is None and sasl_mechanism:
        protocol = "SASL_SSL" if ssl_ca_location else "SASL_PLAINTEXT"
    if protocol:
        conf["security.protocol"] = protocol.upper()
    if sasl_mechanism:
        conf["sasl.mechanism"] = sasl_mechanism.upper()
    if sasl_username is not None:
        conf["sasl.username"] = sasl_username
    if sasl_password is not None:
        conf["sasl.password"] = sasl_password
    if ssl_ca_location:
        conf["ssl.ca.location"] = ssl_ca_location
    return conf
