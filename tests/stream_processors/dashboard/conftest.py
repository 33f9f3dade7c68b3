from tests.stream_processors.dashboard.fixtures import browser, serve_dashboard

__all__ = ["browser", "serve_dashboard"]
