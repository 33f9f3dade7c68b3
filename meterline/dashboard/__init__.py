"""The meterline web dashboard: panels read from ClickHouse, charts drawn by Chart.js.

``meterline up`` serves it from the pipeline's process (sharing its ClickHouse client);
``meterline dashboard`` serves it alone. See docs/dashboard.md.
"""

from meterline.dashboard.server import DashboardServer
from meterline.dashboard.source import Source

__all__ = ["DashboardServer", "Source"]
