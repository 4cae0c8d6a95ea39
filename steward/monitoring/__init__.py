"""The one portfolio implementation: production logs and registry state in, the portfolio out."""
