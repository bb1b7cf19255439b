"""castream dashboard (Streamlit): reads what the engine stores and publishes."""
