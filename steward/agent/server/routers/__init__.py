"""HTTP routes, one module per resource: decisions (and outcomes), policy, health."""
