from tests.fixtures.browser import browser, console_url, open_page, page  # noqa: F401
