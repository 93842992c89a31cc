"""REST resources under /api, one module per noun."""
