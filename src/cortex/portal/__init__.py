"""The portal: server-rendered pages at /portal (Jinja2 + htmx), over the same services as the API."""
