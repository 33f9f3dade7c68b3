from tests.producers.gateway.fixtures import gateway_factory, keystore

__all__ = ["gateway_factory", "keystore"]
