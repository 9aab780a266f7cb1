"""Fleetflow's Streamlit dashboard for supervisors: it speaks only HTTP/WebSocket to the hub.

``fleetflow dashboard --api URL --token T [--port 3000]`` runs ``dashboard/app.py`` with
Streamlit. Nothing of ours is imported but ``topics`` types (an import-linter contract).
"""

from dashboard._api import ApiError, HubApi, HubDown

__all__ = ["ApiError", "HubApi", "HubDown"]
