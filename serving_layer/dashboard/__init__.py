"""The live Dash dashboard of the serving layer (`make dashboard` / `retail dashboard`).

app.py is the thin shell; layout.py builds the page (a function, nothing fetched at import); callbacks.py fetches
through data.py, which calls the ServingLayer's Python query functions in the same process; figures.py turns
DataFrames into figures (pure, tested without a browser); ids.py names every component.
"""
