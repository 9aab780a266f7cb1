"""The dashboard's entry: ``streamlit run dashboard/app.py`` (``fleetflow dashboard`` does it).

One multipage app; each page is a script under ``views/`` and shows the badge of what needs
a human now at its top.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

_HERE = Path(__file__).resolve().parent
_PAGES = [  # (script, title, icon); the first is the default page
    ("views/overview.py", "Overview", "🏭"),
    ("views/workflows.py", "Workflows", "🔀"),
    ("views/dependencies.py", "Dependencies", "🕸"),
    ("views/agents.py", "Agents", "🤖"),
    ("views/coordination.py", "Coordination", "🤝"),
    ("views/conflicts.py", "Conflicts", "⚔"),
    ("views/recovery.py", "Recovery", "🛠"),
    ("views/performance.py", "Performance", "⏱"),
]
# Only the pages there are (st.Page refuses a missing file, which would take every page down).
PAGES = [st.Page(path, title=title, icon=icon, default=i == 0)
         for i, (path, title, icon) in enumerate(_PAGES) if (_HERE / path).is_file()]

st.set_page_config(page_title="Fleetflow", page_icon="🏭", layout="wide")
st.navigation(PAGES).run()
