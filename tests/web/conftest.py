from tests.fixtures.browser import browser, console_url, open_page, page  # noqa: F401
from tests.web.stripe_shop import stripe  # noqa: F401 (the walks that pay)
