"""The Dagster UI in a real browser: Debian's headless Chromium, driven by Selenium through Debian's
ChromeDriver (`.ci/install-browser` installs both; no test tool downloads a browser). The pages are a React
app, so each test waits for the text it expects, then saves a screenshot under `.gp/ui-screenshots/`."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from gp_pipelines import database
from tests.ui.conftest import UiSession

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# As the machine notes say: headless, as root, and no calls to Google's services (the network is closed).
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1600,1200",
]  # fmt: skip
PAGE_TIMEOUT = 60

# The catalogue's table is virtualised (rows are drawn only near the visible part): scroll the page's
# scrolling box one screen at a time; true once at the bottom.
SCROLL_ONE_SCREEN = """
const boxes = Array.from(document.querySelectorAll('*')).filter(e =>
    e.scrollHeight > e.clientHeight + 10 && /auto|scroll/.test(getComputedStyle(e).overflowY));
const box = boxes.sort((a, b) => b.clientHeight - a.clientHeight)[0];
if (!box) return true;
box.scrollTop += Math.max(100, box.clientHeight * 0.7);
return box.scrollTop + box.clientHeight >= box.scrollHeight - 2;
"""
SCROLL_TO_TOP = "document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })"


class Browser:
    """The WebDriver with the few moves these tests make: open a page and wait for text, read every row of a
    virtualised table, save a screenshot."""

    def __init__(self, driver):
        self.driver = driver
        self.dialog_dismissed = False

    def text(self) -> str:
        return self.driver.execute_script("return document.body ? document.body.innerText : ''")

    def wait_for(self, texts: list[str], absent: tuple[str, ...] = ()) -> str:
        """Wait until every one of `texts` is on the page and none of `absent`; the page text, or a failure
        naming what never appeared (with a screenshot of what was there)."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        def ready(_driver) -> bool:
            page = self.text()
            return all(t in page for t in texts) and not any(t in page for t in absent)

        try:
            WebDriverWait(self.driver, PAGE_TIMEOUT, poll_frequency=0.25).until(ready)
        except TimeoutException:
            shot = self.screenshot("failed")
            page = self.text()
            pytest.fail(
                f"{self.driver.current_url}: never showed {[t for t in texts if t not in page]}, or still showed "
                f"{[t for t in absent if t in page]} (screenshot {shot}); the page said:\n{page[:2000]}"
            )
        return self.text()

    def open(self, url: str, texts: list[str]) -> str:
        self.driver.get(url)
        self.wait_for(texts)
        self._dismiss_welcome_dialog()
        return self.text()

    def _dismiss_welcome_dialog(self) -> None:
        """A fresh browser profile gets the 'Join the Dagster community' dialog over the first page: skip it,
        as a person would, so the screenshots show the pages."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        if self.dialog_dismissed:
            return
        skip = (By.XPATH, "//div[@role='dialog']//button[normalize-space()='Skip']")
        try:
            WebDriverWait(self.driver, 5).until(ec.element_to_be_clickable(skip)).click()
            WebDriverWait(self.driver, 5).until(ec.invisibility_of_element_located(skip))
            self.dialog_dismissed = True
        except TimeoutException:
            pass  # not shown on this page; looked for again on the next

    def text_of_every_row(self) -> str:
        seen = [self.text()]
        for _ in range(100):
            at_bottom = self.driver.execute_script(SCROLL_ONE_SCREEN)
            time.sleep(0.2)  # a frame or two for the table to draw the rows scrolled into view
            seen.append(self.text())
            if at_bottom:
                break
        self.driver.execute_script(SCROLL_TO_TOP)
        return "\n".join(seen)

    def screenshot(self, name: str) -> Path:
        path = database.project_home() / "ui-screenshots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), path
        print(f"screenshot: {path}")
        return path


@pytest.fixture(scope="module")
def browser():
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: run `.ci/install-browser` (it installs Debian's chromium and "
            "chromium-driver with apt-get) before the UI tests",
            pytrace=False,
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: pip install -e '.[test]' (or make test)", pytrace=False)
    profile = tempfile.mkdtemp(prefix="gp-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager (which would look for a driver online) never runs.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_asset_catalogue_shows_every_asset(ui: UiSession, browser: Browser):
    keys = sorted(key.to_user_string() for key in ui.expected.asset_graph.get_all_asset_keys())
    # The catalogue writes a key as its path joined with " / " and names the group beside it.
    shown = [key.replace("/", " / ") for key in keys]
    assert "erp_cache / locations" in shown
    browser.open(f"{ui.stack.url}/assets", ["erp_cache / locations", "3 partitions"])
    text = browser.text_of_every_row()
    assert [name for name in shown if name not in text] == []
    assert {"erp_cache", "warehouse", "analytics"} <= set(text.split("\n"))
    # Back at the top the rows are drawn anew: let their status column load before the picture.
    browser.wait_for(["erp_cache / carriers", "3 partitions"], absent=("Loading", "- partitions"))
    browser.screenshot("asset-catalogue")


def test_automation_page_shows_schedules_and_sensors(ui: UiSession, browser: Browser):
    names = sorted({s.name for s in ui.expected.schedule_defs} | {s.name for s in ui.expected.sensor_defs})
    assert "cache_documents_schedule" in names
    # The names come first, then each row's details: the documents schedule's cron, as the UI words it.
    text = browser.open(f"{ui.stack.url}/automation", [*names, "Scheduled Every 15 minutes"])
    assert all(name in text for name in names)
    browser.screenshot("automation")
