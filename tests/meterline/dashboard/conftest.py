from tests.meterline.dashboard.fixtures import browser, serve_dashboard

__all__ = ["browser", "serve_dashboard"]
