"""Training helpers: vectorised envs, callbacks, and the saved artifacts."""
