"""The morning dashboard: one self-contained HTML file of charts built from the warehouse's
tables (the `dashboard` asset and `de-pipeline dashboard`).

settings.py  DE_DASHBOARD_PATH and DE_DASHBOARD_DAYS
spec.py      figures as plain plotly.js dicts (traces, a grid of subplots, JSON)
figures.py   what every chart shares (Chart, colours, layout, labels as text)
sentiment.py, intents.py, journeys.py, volumes.py
             a plotly.js figure per question, from the frames of warehouse/dashboard_queries.py
             (the SQL shapes the numbers; these only draw them)
page.py      the HTML: plotly.js inlined once, no request to any server
build.py     the whole file from the warehouse (write_dashboard)

Nothing is imported here: pandas and plotly load only where a dashboard is drawn (plotly only
for its plotly.js file: the figures never touch plotly.graph_objects, whose validation cost
about a second per dashboard).
"""
