"""Backend-neutral machinery shared by every front end: loading backends, the model registry."""
