"""The admin API (`/v1/*`): one module per resource, shared helpers in `common`."""
