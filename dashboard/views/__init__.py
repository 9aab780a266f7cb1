"""The dashboard's pages: each a Streamlit script that ``dashboard/app.py``'s navigation runs
(a package only so that it is installed and linted with the rest)."""
