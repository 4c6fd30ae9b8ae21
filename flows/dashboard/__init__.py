"""The fraud-monitoring dashboard: a Streamlit app (`app.py`) over read-only warehouse queries (`data.py`).

`synthwatch dashboard` starts it (flows/commands/dashboard.py); nothing here writes to the warehouse except the label
buttons, which go through `flows.feedback.record_feedback` like `synthwatch feedback`.
"""
