"""Entry point: `streamlit run app.py`. Sets up the page and the navigation between the pages."""

from shared.navigation import app_navigation

app_navigation().run()
