"""The ops console's routers (platform operators only), mounted together."""

from __future__ import annotations

from web.pages.ops.channels import router as channels
from web.pages.ops.models import router as models
from web.pages.ops.orgs import router as orgs
from web.pages.ops.tasks import router as tasks
from web.pages.ops.timeline import router as timeline

ROUTERS = (orgs, models, channels, timeline, tasks)
