"""The kpi service's server-rendered sales dashboard: queries, live updates and pure view helpers."""
