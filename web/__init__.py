"""The web console: server-rendered pages for people, on the same services as the JSON APIs.

Pages never call the API over HTTP; they resolve the same session tokens, call the same
domain services and render Jinja2 templates. Third-party JS/CSS is vendored (no CDN, no
Node build), see `scripts/vendor_assets.py`.
"""
